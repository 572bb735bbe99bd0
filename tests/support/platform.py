"""The account, integration and security services together in-process, as a fixture builds them."""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cryptography.fernet import Fernet
from redis.asyncio import Redis

from services.account.app import build as build_account
from services.integration.app import build as build_integration
from services.security import app as security
from services.security.settings import SecuritySettings
from shared.contracts.streams import ACCOUNT_LIFECYCLE
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from tests.support.account import Client
from tests.support.tokens import Signer

KEY = os.environ.setdefault("ALLUSE_TEST_ENCRYPTION_KEY", Fernet.generate_key().decode())
AUDIT_KEY = os.environ.setdefault("ALLUSE_TEST_AUDIT_KEY", Fernet.generate_key().decode())


@dataclass
class Platform:
    client: Client
    redis: Redis
    prefix: str
    account: str  # a Gen-Acc of the portfolio initialized at start
    runtimes: list[Runtime]  # account, integration, security


def _as(settings: Settings, signer: Signer, service: str) -> Settings:
    return settings.model_copy(update={"signing_key": signer.seed(service)})


@contextlib.asynccontextmanager
async def platform(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Platform]:
    """The three services running, each with its own signing key, one portfolio initialized;
    the client reads outcomes on the lifecycle stream, as republished."""
    own = _as(settings, signer, "security").model_dump()  # http_port 0: no HTTP server
    sec = SecuritySettings(**own, encryption_keys=KEY, audit_keys=AUDIT_KEY)
    integration = _as(settings, signer, "integration")
    runtimes = [
        await build_account(settings),
        await build_integration(integration, schema=f"integration_{uuid.uuid4().hex[:8]}"),
        (await security.build(sec)).rt,
    ]
    async with contextlib.AsyncExitStack() as stack:
        for rt in runtimes:
            await stack.enter_async_context(running(rt))
        client = Client(redis, settings, signer)
        client.events = settings.streams.key(ACCOUNT_LIFECYCLE)
        gen = (await client.initialize())["generation"]
        yield Platform(client, redis, settings.stream_prefix, gen["id"], runtimes)
