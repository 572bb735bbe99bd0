"""The account service's unit of work on real PostgreSQL: a command refused after it wrote
leaves nothing behind, whether its writes were buffered or its own SQL, and the rest of its
batch commits."""

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import UUID

import asyncpg
import pytest

from services.account import app, store
from services.account.domain import (
    AccountConfig,
    AccountType,
    InsufficientFunds,
    decide_deposit,
)
from services.account.handlers import _new_account
from services.account.uow import AccountUnit
from shared.contracts.envelope import CloudEvent, decode
from shared.contracts.streams import Streams
from shared.infra.db import create_pool, migrate
from shared.infra.messaging import Emit
from shared.infra.pipeline import Pipeline
from shared.infra.settings import Settings
from tests.support.streams import ce


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    schema = f"uow_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, app.MIGRATIONS)
    pool = await create_pool(settings.database_url, schema)
    yield pool
    await pool.close()


async def scripted(uow: AccountUnit, ev: CloudEvent) -> list[Emit]:
    """Deposit, then possibly refuse: `sql` first writes by SQL of its own (a status change)."""
    account, _ = await uow.account(UUID(ev.data["account_id"]))
    if ev.data.get("sql"):
        await store.set_status(uow.db, account_id=account.id, status=account.status)
        await uow.db.execute("UPDATE accounts SET name = 'renamed' WHERE id = $1", account.id)
    after, tx = uow.book(decide_deposit(account, Decimal(ev.data["amount"])), description="deposit")
    uow.balance_changed(after, tx)
    if ev.data.get("refuse"):
        raise InsufficientFunds("refused after it wrote")
    return uow.events


async def account_with(pool: asyncpg.Pool, streams: Streams, balance: str) -> UUID:
    async with pool.acquire() as conn, conn.transaction():
        unit = await AccountUnit.start(conn, [], streams)
        async with unit.command(decode(entry()[1])):
            portfolio = uuid.uuid4()
            unit.add_portfolio(portfolio_id=portfolio, name="p")
            account = _new_account(
                portfolio, AccountType.REVENUE, Decimal(balance),
                AccountConfig.for_type(AccountType.REVENUE),
            )  # fmt: skip
            unit.add_account(account, name="r")
        await unit.flush()
    return account.id


def entry(**data: object) -> tuple[bytes, dict[bytes, bytes]]:
    fields = ce("test.deposit", data)
    return b"0-0", {k.encode(): v.encode() for k, v in fields.items()}


@pytest.mark.parametrize("sql", [False, True], ids=["buffered", "own-sql"])
async def test_command_refused_after_it_wrote_leaves_nothing_and_its_batch_commits(
    pool: asyncpg.Pool, settings: Settings, sql: bool
) -> None:
    streams = settings.streams
    account_id = await account_with(pool, streams, "100.00")

    async def unit(conn: asyncpg.Connection, batch: list[CloudEvent]) -> AccountUnit:
        return await AccountUnit.start(conn, batch, streams)

    pipeline = Pipeline(pool, scripted, source="tests", reject_stream="r", unit=unit)
    a = str(account_id)
    outcome = await pipeline.process([
        entry(account_id=a, amount="10.00"),
        entry(account_id=a, amount="1000.00", refuse=True, sql=sql),
        entry(account_id=a, amount="5.00"),
    ])  # fmt: skip
    assert len(outcome.ack) == 3 and outcome.rejected == 1
    row = await pool.fetchrow("SELECT balance, name FROM accounts WHERE id = $1", account_id)
    assert row["balance"] == Decimal("115.00") and row["name"] == "r"
    ledger = await pool.fetch(
        "SELECT amount, balance_after FROM transactions WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    assert [(r["amount"], r["balance_after"]) for r in ledger] == [
        (Decimal("100.00"), Decimal("100.00")),
        (Decimal("10.00"), Decimal("110.00")),
        (Decimal("5.00"), Decimal("115.00")),
    ]
    outbox = [
        json.loads(r["fields"]) for r in await pool.fetch("SELECT fields FROM outbox ORDER BY seq")
    ]
    assert [f["type"] for f in outbox] == [
        "alluse.account.balance_changed", "alluse.command.rejected", "alluse.account.balance_changed",
    ]  # fmt: skip
