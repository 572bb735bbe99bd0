"""Business time is the entry's own `time`: only admins and operators may date a command further
back than the backdate_limit setting; anyone else is refused, and nothing is written."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.account.app import build
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.support.account import Client, assert_ledger_balanced, rejection
from tests.support.tokens import Signer


@pytest.fixture
async def client(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Client]:
    rt = await build(settings.model_copy(update={"backdate_limit": timedelta(minutes=15)}))
    async with running(rt):
        yield Client(redis, settings, signer)
        await assert_ledger_balanced(rt)


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def test_a_trading_engine_sends_no_money_command_whatever_its_date(client: Client) -> None:
    """Only admins and operators hold the permissions of commands (docs/scopes.md): a trading
    engine's deposit is refused for its role before its date is looked at."""
    gen = (await client.initialize())["generation"]["id"]
    deposit = {"account_id": gen, "amount": "100.00"}
    for when in (ago(hours=1), ago(minutes=5)):
        refused = rejection(
            await client.command(
                "alluse.account.deposit", deposit, role="trading_engine", time=when
            )
        )
        assert refused["code"] == "forbidden"


async def test_operators_and_admins_backfill_into_the_past(client: Client) -> None:
    gen = (await client.initialize())["generation"]["id"]
    deposit = {"account_id": gen, "amount": "100.00"}
    week_ago = ago(days=7)
    (backfilled,) = await client.command(
        "alluse.account.deposit", deposit, role="operator", time=week_ago
    )
    assert backfilled["data"]["transaction"]["created_at"][:10] == week_ago[:10]
