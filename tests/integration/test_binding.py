"""Keys bound to their writer, through the three services with plain redis-py writers: a second
engine reusing the first's (source, id) or fill id, or an operator's or the scheduler's key,
claims nothing of theirs (issue 18, finding 1); duplicate JSON keys are refused (finding 9);
a value beyond what the books can store is refused at once (finding 6); a refusal of an
effect names the type that was sent (finding 7)."""

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import reinvestment_scheduler
from services.account.handlers.reinvestment import SCHEDULER_SOURCE
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_LIFECYCLE, WS4_EVENTS
from shared.infra.runtime.settings import Settings
from tests.support.platform import Platform, platform
from tests.support.streams import ce, decoded, entries, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

Event = dict[str, Any]


@pytest.fixture
async def run(
    settings: Settings, redis: Redis, signer: Signer, own_database: str
) -> AsyncIterator[Platform]:
    """The platform on a database of its own: the scheduler's key is the same in every test."""
    own = settings.model_copy(update={"database_url": own_database})
    async with platform(own, redis, signer) as p:
        yield p


def engine(signer: Signer, name: str) -> str:
    """A trading engine's token: each engine is its own OAuth client (token subject)."""
    return signer.bearer("trading_engine", sub=name)


def a_fill(account: str, fill_id: str, quantity: int) -> dict[str, Any]:
    return {
        "fill_id": fill_id,
        "order_id": "o-1",
        "account_id": account,
        "symbol": "TSLA",
        "instrument_type": "stock",
        "side": "buy",
        "quantity": quantity,
        "price": "10.00",
        "commission": "1.00",
        "filled_at": "2026-11-26T14:02:11Z",
    }


async def caused(
    redis: Redis, settings: Settings, cause: str, done: Callable[[list[Event]], bool]
) -> list[Event]:
    """The lifecycle events caused by entry id `cause`, once `done` holds of them: the barrier
    that proves an entry was processed before anything is concluded from what it did."""
    lifecycle = settings.streams.key(ACCOUNT_LIFECYCLE)

    async def mine() -> list[Event]:
        found = [decoded(f) for _, f in await entries(redis, lifecycle)]
        return [e for e in found if e.get("causationid") == cause]

    return await until(mine, done, timeout=15, what=f"the events caused by {cause}")


def of_type(type_: str, n: int = 1) -> Callable[[list[Event]], bool]:
    return lambda events: sum(e["type"] == type_ for e in events) >= n


def refused(events: list[Event]) -> list[Event]:
    return [e for e in events if e["type"] == "alluse.command.rejected"]


async def test_a_second_engine_with_the_firsts_source_id_and_fill_id_blocks_nothing(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    ws4, entry_id, fill_id = settings.streams.key(WS4_EVENTS), uuid.uuid4().hex, uuid.uuid4().hex
    # The second engine goes first, with the first engine's (source, id) and fill id.
    other = ce(
        "ws4.trade.filled",
        a_fill(run.account, fill_id, 1),
        source="ws4/gateway-1",
        id_=entry_id,
        authorization=engine(signer, "engine-b"),
    )
    await xadd(redis, ws4, other)
    await caused(redis, settings, entry_id, of_type("alluse.account.balance_changed"))
    real = ce(
        "ws4.trade.filled",
        a_fill(run.account, fill_id, 3),
        source="ws4/gateway-1",
        id_=entry_id,
        authorization=engine(signer, "engine-a"),
    )
    await xadd(redis, ws4, real)
    events = await caused(redis, settings, entry_id, of_type("alluse.account.balance_changed", 2))
    assert refused(events) == []
    amounts = sorted(
        e["data"]["transaction"]["amount"]
        for e in events
        if e["type"] == "alluse.account.balance_changed"
    )
    assert amounts == ["-11.00", "-31.00"]  # both booked: each engine's own fill

    # Only the fill id, under a new entry id: still the first engine's own to use.
    again = uuid.uuid4().hex
    await xadd(
        redis,
        ws4,
        ce(
            "ws4.trade.filled",
            a_fill(run.account, again, 2),
            source="ws4/gateway-1",
            authorization=engine(signer, "engine-b"),
        ),
    )
    first = await caused_fill(redis, settings, again)
    assert refused(first) == []
    mine = ce(
        "ws4.trade.filled",
        a_fill(run.account, again, 4),
        source="ws4/gateway-1",
        authorization=engine(signer, "engine-a"),
    )
    await xadd(redis, ws4, mine)
    events = await caused(redis, settings, mine["id"], lambda e: bool(e))
    assert refused(events) == [], refused(events)
    assert any(e["type"] == "alluse.account.balance_changed" for e in events)

    # The same engine reusing its own fill id with other figures is still a conflict.
    clash = ce(
        "ws4.trade.filled",
        a_fill(run.account, again, 5),
        source="ws4/gateway-1",
        authorization=engine(signer, "engine-a"),
    )
    await xadd(redis, ws4, clash)
    (rejection,) = await caused(redis, settings, clash["id"], lambda e: bool(e))
    assert rejection["data"]["code"] == "fill_conflict"
    assert rejection["data"]["command_type"] == "ws4.trade.filled"  # the type that was sent


async def caused_fill(redis: Redis, settings: Settings, fill_id: str) -> list[Event]:
    """The events of the fill with `fill_id`, found by their transaction's reference."""
    lifecycle = settings.streams.key(ACCOUNT_LIFECYCLE)

    async def of_fill() -> list[Event]:
        found = [decoded(f) for _, f in await entries(redis, lifecycle)]
        causes = {
            e["causationid"]
            for e in found
            if e["type"] == "alluse.account.balance_changed"
            and e["data"]["transaction"].get("reference") == fill_id
        }
        return [e for e in found if e.get("causationid") in causes]

    return await until(of_fill, timeout=15, what=f"the events of fill {fill_id}")


async def test_an_engine_cannot_claim_an_operators_withdrawal_id_or_the_schedulers_key(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    ws4, commands = settings.streams.key(WS4_EVENTS), settings.streams.key(ACCOUNT_COMMANDS)
    deposit = ce(
        "alluse.account.deposit",
        {"amount": "100.00"},
        subject=run.account,
        source="alluse/cli",
        authorization=signer.bearer("operator"),
    )
    await xadd(redis, commands, deposit)
    await caused(redis, settings, deposit["id"], of_type("alluse.account.balance_changed"))
    # The engine learns (or guesses) the id of the operator's next withdrawal and uses it first.
    withdrawal_id, quarter = uuid.uuid4().hex, "2026-Q3"
    for source, id_ in (("alluse/cli", withdrawal_id), (SCHEDULER_SOURCE, f"reinvest:{quarter}")):
        squat = ce(
            "ws4.trade.filled",
            a_fill(run.account, uuid.uuid4().hex, 1),
            source=source,
            id_=id_,
            authorization=engine(signer, "engine-b"),
        )
        await xadd(redis, ws4, squat)
        await caused(redis, settings, id_, of_type("alluse.account.balance_changed"))
    withdraw = ce(
        "alluse.account.withdraw",
        {"amount": "25.00"},
        subject=run.account,
        source="alluse/cli",
        id_=withdrawal_id,
        authorization=signer.bearer("operator"),
    )
    await xadd(redis, commands, withdraw)
    # The engine's fill caused events too (same causation id): the withdrawal's are its
    # withdrawal or its refusal, whichever comes.
    events = await caused(
        redis,
        settings,
        withdrawal_id,
        lambda e: any(
            x["type"] == "alluse.command.rejected"
            or x["data"].get("transaction", {}).get("type") == "withdrawal"
            for x in e
        ),
    )
    assert refused(events) == [], refused(events)

    # The scheduler's own key lives under platform:, which no entry reaches.
    scheduler = reinvestment_scheduler(
        run.runtimes[0], clock=lambda: datetime(2026, 10, 15, 12, tzinfo=UTC)
    )
    assert await scheduler.tick() == quarter
    events = await caused(
        redis,
        settings,
        f"reinvest:{quarter}",
        lambda e: bool(refused(e)) or of_type("alluse.account.reinvestment_completed")(e),
    )
    assert refused(events) == []


async def test_duplicate_keys_in_data_are_refused_not_taken_last_wins(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    fields = ce(
        "alluse.account.deposit", {}, subject=run.account, authorization=signer.bearer("operator")
    )
    fields["data"] = '{"amount": "1.00", "amount": "9000.00"}'
    await xadd(redis, settings.streams.key(ACCOUNT_COMMANDS), fields)
    (rejection,) = await caused(redis, settings, fields["id"], lambda e: bool(e))
    assert rejection["type"] == "alluse.command.rejected"
    assert rejection["data"]["code"] == "invalid_payload"
    assert "'amount'" in rejection["data"]["reason"]


async def test_a_fill_beyond_what_the_books_can_store_is_refused_at_once(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    huge = {
        **a_fill(run.account, uuid.uuid4().hex, 1_000_000),
        "price": "999999999999.0000",
        "multiplier": 1_000_000,
    }
    first = ce(
        "ws4.trade.filled", huge, source="ws4/gateway-1", authorization=engine(signer, "engine-a")
    )
    fine = ce(
        "ws4.trade.filled",
        a_fill(run.account, uuid.uuid4().hex, 1),
        source="ws4/gateway-1",
        authorization=engine(signer, "engine-a"),
    )
    ws4 = settings.streams.key(WS4_EVENTS)
    await xadd(redis, ws4, first)
    await xadd(redis, ws4, fine)
    (rejection,) = await caused(redis, settings, first["id"], lambda e: bool(e))
    assert rejection["data"]["code"] == "invalid_amount", rejection
    assert rejection["data"]["command_type"] == "ws4.trade.filled"
    # The next fill of the same account is applied; nothing was dead-lettered or retried.
    await caused(redis, settings, fine["id"], of_type("alluse.account.balance_changed"))
    for rt in run.runtimes[:1]:
        assert all(not getattr(o, "tries", {}) for o in rt.ordered)
    assert json.loads(json.dumps(rejection["data"]))["reason"]
