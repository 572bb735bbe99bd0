"""An account's ledger rows are numbered in the order they were committed, whichever replica
booked them: a batch's ledger ids are drawn only once it holds the locks of the accounts it
books on, at the start of the batch and when a command locks one more. Else a batch that waited
for a lock books ids below rows another batch committed meanwhile: the ledger read by id shows
the wrong latest balance, and a valuation, which counts the flows booked after the last one it
saw (`id > valued_through`), misses them and may report a drawdown that did not happen."""

import asyncio
from decimal import Decimal
from functools import partial
from uuid import UUID

import asyncpg

from services.account.domain import decide_deposit, decide_withdrawal
from services.account.handlers.valuation import revalue
from services.account.state.uow import AccountUnit
from shared.contracts.envelope import CloudEvent
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Emit
from shared.infra.stream.pipeline import Pipeline
from tests.integration.test_account_unit import account_with, entry, pool  # noqa: F401

waiting = asyncio.Event()  # set by a command that waits mid-batch ("op": "later") ...
resumed = asyncio.Event()  # ... for this cue


async def ops(uow: AccountUnit, ev: CloudEvent) -> list[Emit]:
    """`value` the account, or `deposit` / `withdraw` `amount` to it, or (`later`) wait for
    the cue, then deposit `amount` to `other`, an account the batch did not name."""
    if ev.data["op"] == "later":
        waiting.set()
        await resumed.wait()
        target = UUID(ev.data["other"])
    else:
        target = UUID(ev.data["account_id"])
    account, _ = await uow.account(target)
    if ev.data["op"] == "value":
        await revalue(uow, target)
        return uow.events
    decide = decide_withdrawal if ev.data["op"] == "withdraw" else decide_deposit
    after, tx = uow.book(decide(account, Decimal(ev.data["amount"])), description="test")
    uow.balance_changed(after, tx)
    return uow.events


def replica(pool: asyncpg.Pool, settings: Settings) -> Pipeline:  # noqa: F811
    """The account service's pipeline: its unit also reads the inbox (AccountUnit.opened)."""
    opens = partial(AccountUnit.opened, streams=settings.streams)
    return Pipeline(pool, ops, source="tests", reject_stream="r", opens=opens)


async def in_id_order(pool: asyncpg.Pool, account: UUID) -> list[tuple[int, Decimal, Decimal]]:  # noqa: F811
    """The account's ledger (id, amount, balance_after) by id, checked: each row's
    balance_after is the running sum of the amounts."""
    rows = await pool.fetch(
        "SELECT id, amount, balance_after FROM transactions WHERE account_id = $1 ORDER BY id",
        account,
    )
    ledger = [(r["id"], r["amount"], r["balance_after"]) for r in rows]
    running = Decimal(0)
    for _, amount, after in ledger:
        running += amount
        assert after == running, ledger
    return ledger


async def amounts(pool: asyncpg.Pool, account: UUID) -> list[str]:  # noqa: F811
    """The amounts of the account's ledger by id, once it is checked in order."""
    return [str(amount) for _, amount, _ in await in_id_order(pool, account)]


async def until_waiting_for_a_lock(pool: asyncpg.Pool) -> None:  # noqa: F811
    """The barrier: a session of this database waits for a row lock."""
    for _ in range(200):
        waits = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waits:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no session waited for a lock")


async def test_a_batch_that_waited_for_a_lock_books_after_what_was_committed_meanwhile(
    pool: asyncpg.Pool,  # noqa: F811
    settings: Settings,
) -> None:
    w, x = sorted([await account_with(pool, settings.streams, "10000.00") for _ in range(2)])
    await replica(pool, settings).process([entry(account_id=str(x), op="value")])  # peak 10,000
    holder = await pool.acquire()
    held = holder.transaction()
    await held.start()
    await holder.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", w)
    # B names W (locked first: the lower id) and X: it waits for W.
    b = asyncio.create_task(
        replica(pool, settings).process(
            [
                entry(account_id=str(w), op="deposit", amount="1.00"),
                entry(account_id=str(x), op="withdraw", amount="9000.00"),
            ]
        )
    )
    await until_waiting_for_a_lock(pool)
    c = await replica(pool, settings).process(  # meanwhile C, on X alone
        [
            entry(account_id=str(x), op="deposit", amount="5.00"),
            entry(account_id=str(x), op="value"),
        ]
    )
    assert len(c.ack) == 2 and c.rejected == 0
    await held.commit()
    await pool.release(holder)
    assert len((await b).ack) == 2
    assert await amounts(pool, x) == ["10000.00", "5.00", "-9000.00"]
    # The withdrawal is a flow the next valuation carries into the peak: no drawdown.
    await replica(pool, settings).process([entry(account_id=str(x), op="value")])
    row = await pool.fetchrow("SELECT drawdown_breached FROM accounts WHERE id = $1", x)
    assert row is not None and row["drawdown_breached"] is False


async def test_an_account_locked_mid_batch_gets_ids_drawn_after_its_lock(
    pool: asyncpg.Pool,  # noqa: F811
    settings: Settings,
) -> None:
    w, x = [await account_with(pool, settings.streams, "100.00") for _ in range(2)]
    waiting.clear()
    resumed.clear()
    # B names W only; its command waits, then books on X: X is locked mid-batch.
    b = asyncio.create_task(
        replica(pool, settings).process(
            [entry(account_id=str(w), op="later", other=str(x), amount="1.00")]
        )
    )
    await asyncio.wait_for(waiting.wait(), 10)  # B holds its ids, before its lock of X
    c = await replica(pool, settings).process(
        [entry(account_id=str(x), op="deposit", amount="5.00")]
    )
    assert len(c.ack) == 1 and c.rejected == 0
    resumed.set()
    assert len((await b).ack) == 1
    assert await amounts(pool, x) == ["100.00", "5.00", "1.00"]


async def test_replicas_depositing_to_one_account_keep_its_ledger_in_order(
    pool: asyncpg.Pool,  # noqa: F811
    settings: Settings,
) -> None:
    account = await account_with(pool, settings.streams, "0.00")
    replicas = [replica(pool, settings) for _ in range(4)]
    batches = [
        [entry(account_id=str(account), op="deposit", amount="1.00") for _ in range(10)]
        for _ in range(40)
    ]
    outs = await asyncio.gather(*(replicas[i % 4].process(b) for i, b in enumerate(batches)))
    assert all(len(o.ack) == 10 and o.rejected == 0 for o in outs)
    ledger = await in_id_order(pool, account)
    assert len(ledger) == 400 and ledger[-1][2] == Decimal("400.00")
