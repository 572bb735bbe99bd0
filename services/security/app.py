"""Composition root: keys, migrations, runtime, the audit consumer and the HTTP routes."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from cryptography.fernet import MultiFernet
from starlette.routing import BaseRoute

from services.security import audit, crypto, heads, http, metrics, store
from services.security.admin import Admin
from services.security.audit_reader import AuditConsumer
from services.security.chain import Head
from services.security.grants import Authority
from services.security.passwords import Passwords
from services.security.settings import SecuritySettings
from shared.contracts.streams import AUDIT, AUDIT_HEADS, REVOCATIONS
from shared.contracts.trust import SECURITY, SERVICES
from shared.infra.runtime import logs
from shared.infra.runtime.db import migrate
from shared.infra.runtime.service import Runtime, open_runtime, serve_until_stopped
from shared.infra.stream.pipeline import Pipeline
from shared.infra.stream.retention import Retained
from shared.infra.trust.guards import signed_by
from shared.infra.trust.keys import KeySet
from shared.infra.trust.revocations import Revocations
from shared.infra.trust.signing import IdentityError, service_jwk

SCHEMA = "security"
MIGRATIONS = Path(__file__).parent / "migrations"
APPEND_ONLY = ("audit_records",)  # the runtime role may only SELECT and INSERT these
log = logging.getLogger(__name__)


def passwords_from(settings: SecuritySettings) -> Passwords:
    return Passwords(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )


def fernet_from(settings: SecuritySettings) -> MultiFernet:
    """Refuses to go on without configured keys (raises KeyConfigError saying how to make one).

    The audit chain's keys are checked and taken into use here too: both live outside the
    database, and neither the service nor its administration may start without them.
    """
    fernet = crypto.load_fernet(settings.encryption_keys.get_secret_value())
    audit.use_keys(crypto.load_audit_keys(settings.audit_keys.get_secret_value()))
    return fernet


def service_jwks(settings: SecuritySettings, own: dict[str, Any]) -> list[dict[str, Any]]:
    """The services' entry-signing keys, each bound to its service: its own, and the others'."""
    keys = [own]
    for item in filter(None, (i.strip() for i in settings.service_keys.split(","))):
        name, sep, public = item.partition("=")
        if not sep or name not in SERVICES or name == SECURITY:
            raise IdentityError(f"ALLUSE_SERVICE_KEYS: '{item[:40]}' is not <service>=<key>")
        keys.append(service_jwk(name, public.strip()))
    return keys


@dataclass
class Service:
    rt: Runtime
    authority: Authority
    routes: list[BaseRoute]


async def prepare_database(settings: SecuritySettings) -> None:
    """The schema's migrations, before the service or its administration touch it: as the
    schema owner when ALLUSE_MIGRATION_DATABASE_URL is set, granting DATABASE_URL's role only
    what it needs (on the audit chain: SELECT and INSERT)."""
    owner = settings.migration_database_url or settings.database_url
    runtime = urlsplit(settings.database_url).username
    if urlsplit(owner).username == runtime:
        runtime = None  # one role for both: it owns the schema
    await migrate(owner, SCHEMA, MIGRATIONS, runtime_role=runtime, append_only=APPEND_ONLY)


async def build(settings: SecuritySettings) -> Service:
    fernet = fernet_from(settings)  # first: no half-started service without keys
    await prepare_database(settings)
    rt = await open_runtime(settings, schema=SCHEMA, service=SECURITY)
    await audit.seal(rt.pool)
    await Admin(rt.pool, settings, fernet, actor="security").ensure_signing_key()
    authority = Authority(rt.pool, settings, fernet, passwords_from(settings))
    services = service_jwks(settings, rt.signer.jwk())

    async def jwks() -> dict[str, Any]:
        async with rt.pool.acquire() as conn:
            return {"keys": [*await store.public_keys(conn), *services]}

    # This service checks signatures against what it publishes, without asking itself by HTTP.
    rt.keys = KeySet(jwks, refresh=settings.jwks_refresh_seconds, grace=settings.jwks_grace_seconds)
    # The revocation stream is this service's: an entry on it that is not its own revocation
    # is dead-lettered here with the reason (the other services only refuse it).
    s = settings.streams
    rt.revocations = Revocations(
        rt.redis, s.key(REVOCATIONS), keys=rt.keys, dead_letters=s.dlq(REVOCATIONS)
    )
    rt.retained.append(Retained(s.dlq(REVOCATIONS), settings.dlq_retention))
    rt.retained.append(Retained(s.key(AUDIT_HEADS), settings.audit_heads_retention))
    pipeline = Pipeline(
        rt.pool,
        audit.on_audit_event,
        source=audit.SOURCE,
        reject_stream=settings.streams.dlq(AUDIT),
        # The batch's records chained and written together, each once within the window.
        unit=audit.AuditUnit.within(settings.dedup_window),
        limits=settings.limits,
        # An audit record only from the service it names.
        guard=signed_by(rt.keys, None, settings.dedup_window),
        streams=settings.streams,
    )
    rt.consumers.append(
        AuditConsumer(
            linger=settings.audit_linger_ms / 1000,
            redis=rt.redis,
            settings=settings,
            stream=settings.streams.key(AUDIT),
            group="security-audit",
            process=pipeline.process,
            retention=settings.audit_retention,  # the chain keeps every record; others may read
        )
    )
    return Service(rt, authority, http.routes(authority, rt.pool, jwks))


async def trim_revocations(svc: Service, every: float = 60) -> None:
    """Entries older than the longest token life can refuse nothing: drop them."""
    s = svc.rt.settings
    assert isinstance(s, SecuritySettings)
    while True:
        with contextlib.suppress(Exception):
            horizon = int((time.time() - s.access_token_ttl - 120) * 1000)
            await svc.rt.redis.xtrim(
                s.streams.key(REVOCATIONS), minid=str(horizon), approximate=True
            )
        await asyncio.sleep(every)


async def check_audit_chain(pool: asyncpg.Pool, every: float, pinned: Sequence[Head] = ()) -> None:
    """Re-verify the hash chain now and then, so an alert fires when it breaks: also against
    the last head this process published (`pinned`), so rows dropped after it are seen even
    when the heads stream was deleted meanwhile."""
    while True:
        try:
            checked, broken = await audit.verify(pool, list(pinned))
            metrics.AUDIT_INTACT.set(1 if broken is None else 0)
            metrics.AUDIT_CHECKED.set(checked)
            metrics.AUDIT_CHECKED_AT.set_to_current_time()
            if broken is not None:
                log.error("audit chain broken at seq %s: %s", broken.seq, broken.problem)
        except Exception:
            log.exception("audit chain check failed; will try again")
        await asyncio.sleep(every)


async def main() -> None:
    settings = SecuritySettings()
    logs.setup(settings.log_level, "security")
    svc = await build(settings)
    stream, every = settings.streams.key(AUDIT_HEADS), settings.audit_head_every

    pinned: list[Head] = []  # the last head published, in memory

    async def publish_heads() -> None:
        await heads.publish_forever(
            svc.rt.pool, svc.rt.redis, stream, every, svc.rt.signer.sign, pinned
        )

    async def check_chain() -> None:
        await check_audit_chain(svc.rt.pool, settings.audit_check_seconds, pinned)

    async def trim() -> None:
        await trim_revocations(svc)

    async def failures() -> None:
        await svc.authority.failures.flush_forever(settings.unauthenticated_audit_every)

    loops = [trim, publish_heads, check_chain, failures]
    await serve_until_stopped(svc.rt, svc.routes, loops=loops)
