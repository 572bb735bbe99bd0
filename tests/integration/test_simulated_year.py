"""A simulated year of the demo portfolio through the integration and account services: the
ALL-USE cycle (puts within position sizing, shares after an assignment, covered calls until
called away, expirations) never takes cash below zero, and an assignment is never announced
as a drawdown."""

import json
import uuid
from argparse import Namespace
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import build as account_service
from services.integration.app import build as integration_service
from shared.contracts.streams import ACCOUNT_LIFECYCLE
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from shared.simulators import upstream as simulate
from tests.conftest import as_service
from tests.support.account import Client, assert_ledger_balanced
from tests.support.streams import entries
from tests.support.tokens import Signer


@pytest.fixture
async def platform(
    settings: Settings, own_database: str, redis: Redis, signer: Signer
) -> AsyncIterator[tuple[Client, Settings]]:
    mine = settings.model_copy(update={"database_url": own_database})  # quotes are shared data
    account = await account_service(mine)
    integration = await integration_service(
        as_service(mine, signer, "integration"), schema=f"integration_{uuid.uuid4().hex[:8]}"
    )
    async with running(account), running(integration):
        yield Client(redis, mine, signer), mine
        await assert_ledger_balanced(account)


async def lifecycle(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    found = await entries(redis, settings.streams.key(ACCOUNT_LIFECYCLE))
    out = []
    for _, raw in found:
        event: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        event["data"] = json.loads(event["data"])
        out.append(event)
    return out


async def test_a_year_of_the_cycle_never_overdraws_and_no_assignment_is_a_drawdown(
    platform: tuple[Client, Settings],
) -> None:
    client, settings = platform
    engine = client.signer.token("trading_engine")
    accounts = await client.initialize()  # $250,000 moderate, as `make run` shows it
    args = Namespace(
        weeks=52,
        rate=0,
        accounts=[f"{a['id']}:{t}" for t, a in accounts.items()],
        seed=11,
        start=date(2025, 1, 6),
        violations=0.05,
        measure=False,
        measure_stream=ACCOUNT_LIFECYCLE,
        timeout=60.0,
        quiet=True,
        week_types=None,
    )
    assert await simulate.run(args, engine, settings) == 0
    events = await lifecycle(client.redis, settings)
    kinds = {e["type"].rsplit(".", 1)[1] for e in events}
    assert {"balance_changed", "position_changed", "protocol_violation"} <= kinds
    balances = [
        Decimal(e["data"]["balance"]) for e in events if e["type"].endswith("balance_changed")
    ]
    assert len(balances) > 100 and min(balances) >= 0  # no cash ever went negative
    moved = [e for e in events if e["type"].endswith("position_changed")]
    assigned = {e["causationid"] for e in moved if e["data"]["cause"] == "assignment"}
    called = {
        e["causationid"]
        for e in moved
        if e["data"]["cause"] == "assignment" and e["data"]["kind"] == "call"
    }
    shares = [e["data"] for e in moved if e["data"]["kind"] == "shares"]
    assert assigned and called and shares  # puts became shares, and calls took them away
    assert any(e["data"]["cause"] == "expiration" for e in moved)
    drawdowns = [e for e in events if e["type"].endswith("drawdown_breached")]
    assert not [d for d in drawdowns if d["causationid"] in assigned]
    rejected = [e["data"] for e in events if e["type"].endswith("command.rejected")]
    assert rejected == []  # nothing closed that was not open, nothing sized beyond its cash
