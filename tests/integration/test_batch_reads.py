"""What a batch of effects reads before its handlers run, and in how many round trips: the
inbox, the accounts' locks and ledger ids in one statement, then (with the locks held) the
accounts' positions and value states and the references the batch claims in a second."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from functools import partial
from types import SimpleNamespace
from typing import cast
from uuid import UUID

import asyncpg
import pytest

from services.account import app
from services.account.handlers import trades
from services.account.handlers.effects import TradeEffect
from services.account.handlers.router import EFFECTS
from services.account.state.store import accounts, ledger, positions
from services.account.state.uow import AccountUnit
from shared.contracts.envelope import CloudEvent, decode
from shared.infra.runtime.db import migrate, transaction
from shared.infra.runtime.service import Runtime
from shared.infra.runtime.settings import Settings
from shared.infra.stream import inbox
from shared.infra.stream.messaging import Emit
from shared.infra.stream.pipeline import Pipeline
from tests.integration.test_account_unit import account_with, entry, fill, pool  # noqa: F401
from tests.integration.test_ledger_order import until_waiting_for_a_lock

RESET = "SELECT pg_advisory_unlock_all()"  # the pool's reset of a released connection


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """A pool of a fresh schema whose connections note every statement they send."""
    schema = f"reads_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, app.MIGRATIONS)
    sent: list[str] = []

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: sent.append(record.query))

    noted = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=2,
        init=init,
        server_settings={"search_path": schema},
    )
    assert noted is not None
    yield noted, sent
    await noted.close()


def effect(account: UUID, fill_id: str) -> tuple[bytes, dict[bytes, bytes]]:
    entry_id, fields = fill(account, fill_id, "sell_to_open", 1)
    return entry_id, {**fields, b"type": b"alluse.effect.trade_filled"}


async def test_a_fill_batch_makes_five_round_trips(
    counted: tuple[asyncpg.Pool, list[str]], settings: Settings
) -> None:
    """BEGIN; the inbox, locks and ids; the accounts' state and claims; the writes; COMMIT."""
    db, sent = counted
    runtime = cast(Runtime, SimpleNamespace(settings=settings, pool=db))
    effects = app._pipeline(runtime, EFFECTS, None)
    first, second = [await account_with(db, settings.streams, "100000.00") for _ in range(2)]
    await effects.process([effect(first, "f-0")])  # the connection learns its types
    sent.clear()
    batch = [effect(first, "f-1"), effect(second, "f-2")]
    outcome = await effects.process(batch)
    assert len(outcome.ack) == 2 and outcome.rejected == 0
    statements = [q for q in sent if not q.startswith(RESET)]
    assert len(statements) == 5, statements
    assert (statements[0], statements[-1]) == ("BEGIN;", "COMMIT;")
    again = await effects.process(batch[:1])  # redelivered: its inbox row answers it
    assert len(again.ack) == 1 and again.rejected == 0
    assert (outcome.emitted, again.emitted) == (7, 4)  # its 3 events again; an audit batch each
    assert (outcome.outboxed, again.outboxed) == (7, 4)  # all through the outbox: the relay's
    held = await db.fetch("SELECT quantity FROM positions ORDER BY account_id")
    assert sorted(r["quantity"] for r in held) == [-2, -1]


held = asyncio.Event()  # set by a fill that holds its account's lock ...
go = asyncio.Event()  # ... until this is set


async def holding(uow: AccountUnit, ev: CloudEvent) -> list[Emit]:
    """A fill; with `hold`, its batch then waits for `go` (its locks held, nothing written)."""
    data = dict(ev.data)
    hold = data.pop("hold", False)
    await trades.trade_filled(uow, TradeEffect.model_validate(data))
    if hold:
        held.set()
        await go.wait()
    return uow.events


async def test_a_fill_batch_that_waited_for_its_account_builds_on_what_was_committed(
    pool: asyncpg.Pool,  # noqa: F811
    settings: Settings,
) -> None:
    """The positions and value state are read after the locks, in a snapshot of their own: a
    batch that waited for an account's lock moves the position the holder left, not the one
    before it (read with the lock, in the lock's snapshot, it would write -1 over -4)."""
    account = await account_with(pool, settings.streams, "100000.00")
    pipeline = Pipeline(
        pool,
        holding,
        source="tests",
        reject_stream="r",
        opens=partial(AccountUnit.opened, streams=settings.streams),
    )
    held.clear()
    go.clear()
    first = asyncio.create_task(
        pipeline.process([fill(account, "f-1", "sell_to_open", 3, hold=True)])
    )
    await asyncio.wait_for(held.wait(), 10)
    second = asyncio.create_task(pipeline.process([fill(account, "f-2", "sell_to_open", 1)]))
    await until_waiting_for_a_lock(pool)
    go.set()
    assert len((await first).ack) == 1
    outcome = await second
    assert len(outcome.ack) == 1 and outcome.rejected == 0
    moves = await pool.fetch(
        "SELECT quantity_after FROM position_moves WHERE account_id = $1 ORDER BY id", account
    )
    assert [m["quantity_after"] for m in moves] == [-3, -4]
    quantity = await pool.fetchval("SELECT quantity FROM positions WHERE account_id = $1", account)
    assert quantity == -4
    ledger = await pool.fetch(
        "SELECT id, amount FROM transactions WHERE account_id = $1 ORDER BY id", account
    )
    row = await pool.fetchrow("SELECT balance, valued_through FROM accounts WHERE id = $1", account)
    assert row is not None
    assert row["balance"] == sum(r["amount"] for r in ledger)
    assert row["valued_through"] == ledger[-1]["id"]


async def test_the_batch_reads_answer_as_the_plain_reads_do_old_rows_included(
    pool: asyncpg.Pool,  # noqa: F811
    settings: Settings,
) -> None:
    """The lock statement's inbox records and the state read's claims are decoded by position:
    each must answer as the plain reads (by name) do, rows written before keys and claims
    named their writer included (such a row answers every writer; a key's own row wins)."""
    x = await account_with(pool, settings.streams, "100.00")
    evs = []
    for _ in range(4):
        ev = decode(entry(account_id=str(x), amount="1")[1])
        ev.verified_as("a", "client")
        evs.append(ev)
    for writer, ev, fingerprint in [
        ("client:a", evs[0], "f-own"),
        ("", evs[1], "f-no-writer"),
        ("", evs[2], "f-old"),
        ("client:a", evs[2], "f-new"),
    ]:
        await pool.execute(
            "INSERT INTO inbox (writer, source, id, type, fingerprint, outcome)"
            " VALUES ($1, $2, $3, 't', $4, $5)",
            writer,
            ev.source,
            ev.id,
            fingerprint,
            f'[["s", {{"n": "{fingerprint}"}}]]',
        )
    for producer, ref, fingerprint, source, entry_id in [
        ("p", "r1", "own", "s", "1"),
        ("", "r2", "no-producer", "", ""),
        ("", "r3", "old", "s", "o"),
        ("p", "r3", "new", "s", "n"),
    ]:
        await pool.execute(
            "INSERT INTO trade_refs (producer, kind, ref_id, account_id, fingerprint,"
            " entry_source, entry_id) VALUES ($1, 'fill', $2, $3, $4, $5, $6)",
            producer,
            ref,
            x,
            fingerprint,
            source,
            entry_id,
        )
    refs = [("p", "fill", r) for r in ("r1", "r2", "r3", "r4")]
    async with transaction(pool) as conn:
        _, _, known = await accounts.lock_with_ids(conn, account_ids=[x], ids=3, seen=evs)
        by_name = await inbox.known(conn, evs)
        _, claims = await positions.valued_and_claimed(conn, account_ids=[x], refs=refs)
        claims_by_name = await ledger.claimed_refs(conn, refs=refs)
    assert known == by_name
    assert {k: (f, w) for k, (f, _, w) in known.items()} == {
        evs[0].key: ("f-own", "client:a"),
        evs[1].key: ("f-no-writer", ""),
        evs[2].key: ("f-new", "client:a"),
    }
    assert (
        claims
        == claims_by_name
        == {
            refs[0]: ("own", "s", "1"),
            refs[1]: ("no-producer", "", ""),
            refs[2]: ("new", "s", "n"),
        }
    )
