"""The account service in-process for integration tests, checked after each test."""

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.account.app import build
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.support.account import Client, assert_ledger_balanced
from tests.support.tokens import Signer


@pytest.fixture
async def client(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Client]:
    rt = await build(settings)
    async with running(rt):
        yield Client(redis, settings, signer)
        await assert_ledger_balanced(rt)
