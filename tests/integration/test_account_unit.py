"""The account service's unit of work on real PostgreSQL: a command refused after it wrote
leaves nothing behind, whether its writes were buffered or its own SQL, and the rest of its
batch commits."""

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from uuid import UUID

import asyncpg
import pytest

from services.account import app
from services.account.domain import (
    AccountConfig,
    AccountType,
    InsufficientFunds,
    decide_deposit,
)
from services.account.handlers import trades
from services.account.handlers.accounts import _new_account
from services.account.handlers.effects import TradeEffect
from services.account.state.store import accounts
from services.account.state.uow import AccountUnit
from shared.contracts.envelope import CloudEvent, decode
from shared.contracts.streams import Streams
from shared.infra.runtime.bulk import Statements
from shared.infra.runtime.db import create_pool, migrate, transaction
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Emit
from shared.infra.stream.pipeline import Pipeline
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
        await accounts.set_status(uow.db, account_id=account.id, status=account.status)
        await uow.db.execute("UPDATE accounts SET name = 'renamed' WHERE id = $1", account.id)
    after, tx = uow.book(decide_deposit(account, Decimal(ev.data["amount"])), description="deposit")
    uow.balance_changed(after, tx)
    if ev.data.get("refuse"):
        raise InsufficientFunds("refused after it wrote")
    return uow.events


async def account_with(pool: asyncpg.Pool, streams: Streams, balance: str) -> UUID:
    async with transaction(pool) as conn:
        unit = await AccountUnit.start(conn, [], streams)
        async with unit.command(decode(entry()[1])):
            portfolio = uuid.uuid4()
            unit.add_portfolio(portfolio_id=portfolio, name="p")
            account = _new_account(
                portfolio,
                AccountType.REVENUE,
                Decimal(balance),
                AccountConfig.for_type(AccountType.REVENUE),
            )
            unit.add_account(account, name="r")
        writes = Statements()
        await unit.flush(writes)
        await writes.send(conn)
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
    outcome = await pipeline.process(
        [
            entry(account_id=a, amount="10.00"),
            entry(account_id=a, amount="1000.00", refuse=True, sql=sql),
            entry(account_id=a, amount="5.00"),
        ]
    )
    assert len(outcome.ack) == 3 and outcome.rejected == 1
    row = await pool.fetchrow("SELECT balance, name FROM accounts WHERE id = $1", account_id)
    assert row is not None
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
        "alluse.account.balance_changed",
        "alluse.command.rejected",
        "alluse.account.balance_changed",
    ]


async def filling(uow: AccountUnit, ev: CloudEvent) -> list[Emit]:
    """A fill, then possibly a refusal after everything it booked."""
    data = dict(ev.data)
    refuse = data.pop("refuse", False)
    await trades.trade_filled(uow, TradeEffect.model_validate(data))
    if refuse:
        raise InsufficientFunds("refused after it wrote")
    return uow.events


def fill(
    account: UUID, fill_id: str, side: str, quantity: int, **more: object
) -> tuple[bytes, dict[bytes, bytes]]:
    return entry(
        **{
            "fill_id": fill_id,
            "order_id": "o-1",
            "account_id": str(account),
            "symbol": "XYZ",
            "instrument_type": "option",
            "option_type": "put",
            "strike": "50",
            "expiration": "2026-12-18",
            "delta": "-0.30",
            "side": side,
            "quantity": quantity,
            "price": "1.25",
            "multiplier": 100,
            "commission": "1.30",
            "filled_at": "2026-12-03T15:00:00Z",
            **more,
        }
    )


async def test_fills_of_one_batch_book_once_and_a_refused_one_leaves_nothing(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    streams = settings.streams
    account_id = await account_with(pool, streams, "100000.00")

    async def unit(conn: asyncpg.Connection, batch: list[CloudEvent]) -> AccountUnit:
        return await AccountUnit.start(conn, batch, streams)

    pipeline = Pipeline(pool, filling, source="tests", reject_stream="r", unit=unit)
    outcome = await pipeline.process(
        [
            fill(account_id, "f-1", "sell_to_open", 3),
            fill(account_id, "f-2", "buy_to_open", 1),  # a short is open: refused after its claim
            fill(account_id, "f-4", "sell_to_open", 5, refuse=True),  # refused after it booked
            fill(account_id, "f-1", "sell_to_open", 3),  # the same fill again: applied once
            fill(account_id, "f-3", "buy_to_close", 1),
            fill(account_id, "f-2", "sell_to_open", 1),  # the refused id is free again
        ]
    )
    assert len(outcome.ack) == 6 and outcome.rejected == 2
    again = await pipeline.process([fill(account_id, "f-3", "buy_to_close", 1)])
    assert again.rejected == 0

    refs = await pool.fetch("SELECT ref_id FROM trade_refs WHERE account_id = $1", account_id)
    assert sorted(r["ref_id"] for r in refs) == ["f-1", "f-2", "f-3"]
    held = await pool.fetchrow(
        "SELECT quantity, cost FROM positions WHERE account_id = $1", account_id
    )
    assert held is not None
    assert (held["quantity"], held["cost"]) == (-3, Decimal("-375.00"))
    moves = await pool.fetch(
        "SELECT quantity, quantity_after FROM position_moves WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    assert [(m["quantity"], m["quantity_after"]) for m in moves] == [(-3, -3), (1, -2), (-1, -3)]
    ledger = await pool.fetch(
        "SELECT amount FROM transactions WHERE account_id = $1 ORDER BY id", account_id
    )
    # 3 x 125 - 1.30 credited, 125 + 1.30 debited, 125 - 1.30 credited
    assert [r["amount"] for r in ledger] == [
        Decimal("100000.00"),
        Decimal("373.70"),
        Decimal("-126.30"),
        Decimal("123.70"),
    ]
    account = await pool.fetchrow(
        "SELECT balance, positions_value, violations FROM accounts WHERE id = $1", account_id
    )
    assert account is not None
    assert account["balance"] == sum(r["amount"] for r in ledger)
    assert account["positions_value"] == Decimal("-375.00")  # no quote yet: valued at cost
    points = await pool.fetch(
        "SELECT cash, positions_value FROM account_values WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    assert [(p["cash"], p["positions_value"]) for p in points] == [
        (Decimal("100373.70"), Decimal("-375.00")),
        (Decimal("100247.40"), Decimal("-250.00")),
        (Decimal("100371.10"), Decimal("-375.00")),
    ]
    recorded = await pool.fetchval(
        "SELECT count(*) FROM violations WHERE account_id = $1", account_id
    )
    assert account["violations"] == recorded


async def creating(uow: AccountUnit, ev: CloudEvent) -> list[Emit]:
    """`create`: a portfolio with a revenue account of `id` funded with `amount`; else a
    deposit, as `scripted` makes it."""
    if not ev.data.get("create"):
        return await scripted(uow, ev)
    portfolio = uuid.uuid4()
    uow.add_portfolio(portfolio_id=portfolio, name="new")
    config = AccountConfig.for_type(AccountType.REVENUE)
    account = _new_account(portfolio, AccountType.REVENUE, Decimal(ev.data["amount"]), config)
    uow.add_account(replace(account, id=UUID(ev.data["id"])), name="new")
    return uow.events


async def test_a_batch_that_creates_an_account_and_deposits_to_it_saves_its_balance(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """The new account's row must exist before its balance is saved: an UPDATE in the same
    statement as the INSERT would not see it (the buffer's writes go one by one then)."""
    streams = settings.streams
    known = await account_with(pool, streams, "50.00")

    async def unit(conn: asyncpg.Connection, batch: list[CloudEvent]) -> AccountUnit:
        return await AccountUnit.start(conn, batch, streams)

    pipeline = Pipeline(pool, creating, source="tests", reject_stream="r", unit=unit)
    new = uuid.uuid4()
    outcome = await pipeline.process(
        [
            entry(account_id=str(known), amount="1.00"),
            entry(create=True, id=str(new), amount="100.00"),
            entry(account_id=str(new), amount="10.00"),
            entry(account_id=str(new), amount="5.00"),
        ]
    )
    assert len(outcome.ack) == 4 and outcome.rejected == 0
    for account_id, balance in ((new, "115.00"), (known, "51.00")):
        row = await pool.fetchrow(
            "SELECT balance, contributed, updated_at > created_at AS saved FROM accounts"
            " WHERE id = $1",
            account_id,
        )
        assert row is not None
        assert (row["balance"], row["contributed"], row["saved"]) == (
            Decimal(balance),
            Decimal(balance),
            True,
        )
        ledger = await pool.fetch(
            "SELECT balance_after FROM transactions WHERE account_id = $1 ORDER BY id", account_id
        )
        assert ledger[-1]["balance_after"] == Decimal(balance)


async def test_a_fill_batch_with_violations_saves_every_figure_of_its_accounts(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """Balances, value states and violation counts of one account are one UPDATE of its row:
    as parts of one statement, a second UPDATE of the same row would be lost."""
    streams = settings.streams
    first = await account_with(pool, streams, "100000.00")
    second = await account_with(pool, streams, "100000.00")
    before = await pool.fetchval("SELECT max(updated_at) FROM accounts")

    async def unit(conn: asyncpg.Connection, batch: list[CloudEvent]) -> AccountUnit:
        return await AccountUnit.start(conn, batch, streams)

    pipeline = Pipeline(pool, filling, source="tests", reject_stream="r", unit=unit)
    outcome = await pipeline.process(
        [
            # Opened on a Thursday (a violation of each opening fill) outside the delta range
            fill(first, "f-1", "sell_to_open", 3, delta="-0.90"),
            fill(second, "f-2", "sell_to_open", 2),
            fill(first, "f-3", "sell_to_open", 1, delta="-0.95"),
            fill(second, "f-4", "buy_to_close", 2),  # closes the position: its row goes
        ]
    )
    assert len(outcome.ack) == 4 and outcome.rejected == 0
    for account_id, count, quantity in ((first, 4, -4), (second, 1, None)):
        row = await pool.fetchrow(
            "SELECT balance, positions_value, peak_value, valued_through, violations, updated_at"
            " FROM accounts WHERE id = $1",
            account_id,
        )
        assert row is not None
        ledger = await pool.fetch(
            "SELECT id, amount FROM transactions WHERE account_id = $1 ORDER BY id", account_id
        )
        assert row["balance"] == sum(r["amount"] for r in ledger)
        assert row["valued_through"] == ledger[-1]["id"]
        assert row["updated_at"] > before
        recorded = await pool.fetchval(
            "SELECT count(*) FROM violations WHERE account_id = $1", account_id
        )
        assert row["violations"] == recorded == count
        held = await pool.fetchval(
            "SELECT quantity FROM positions WHERE account_id = $1", account_id
        )
        assert held == quantity
        assert row["positions_value"] == (Decimal("-500.00") if quantity else 0)
        last = await pool.fetchrow(
            "SELECT cash, positions_value FROM account_values WHERE account_id = $1"
            " ORDER BY id DESC LIMIT 1",
            account_id,
        )
        assert last is not None
        assert (last["cash"], last["positions_value"]) == (row["balance"], row["positions_value"])
        assert row["peak_value"] >= row["balance"] + row["positions_value"]
