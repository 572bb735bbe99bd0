"""The forwarder's one read of a batch (services/integration/store.py `forwarding`): whether the
outbox waits, which keys the inbox knows, as inbox.known answers them (a row of no writer,
written before keys named one, answers every writer; a writer's own row wins over it), and
the week type in force on each business day."""

import uuid
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest

from services.integration import store
from services.integration.app import MIGRATIONS
from shared.contracts.envelope import CloudEvent, new_event
from shared.infra.runtime.db import connection, create_pool, migrate
from shared.infra.runtime.settings import Settings
from shared.infra.stream import inbox


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    schema = f"fwdread_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, MIGRATIONS)
    pool = await create_pool(settings.database_url, schema)
    yield pool
    await pool.close()


def event(writer: str, id_: str, source: str = "ws4/engine-a") -> CloudEvent:
    fields = new_event("ws4.trade.filled", source, {}, event_id=id_)
    ev = CloudEvent.model_validate({**fields, "data": {}})
    ev.verified_as(writer, "client")
    return ev


async def applied(pool: asyncpg.Pool, writer: str, id_: str, fingerprint: str) -> None:
    """An inbox row of `writer` ('' for one written before keys named their writer)."""
    await pool.execute(
        "INSERT INTO inbox (writer, source, id, type, fingerprint, outcome)"
        " VALUES ($1, 'ws4/engine-a', $2, 'ws4.trade.filled', $3, $4)",
        writer,
        id_,
        fingerprint,
        f'[["s", {{"n": "{fingerprint}"}}]]',  # its outcome: what it emitted
    )


async def test_known_keys_are_those_inbox_known_reads_a_row_of_no_writer_answering_any(
    pool: asyncpg.Pool,
) -> None:
    await applied(pool, "client:a", "own", "f-own")
    await applied(pool, "", "legacy", "f-legacy")  # answers every writer of its (source, id)
    await applied(pool, "", "both", "f-old")  # and its writer's own row: that one wins
    await applied(pool, "client:a", "both", "f-new")
    await applied(pool, "client:z", "other", "f-z")  # another writer's key: not this one's
    events = [
        event("a", "own"),
        event("b", "legacy"),
        event("a", "both"),
        event("a", "other"),
        event("a", "new"),
        event("a", "own", source="ws4/engine-b"),  # same id, another source
    ]
    seen = await store.forwarding(pool, events=events, days=[])
    assert seen.known == {
        ("client:a", "ws4/engine-a", "own"): ("f-own", [("s", {"n": "f-own"})], "client:a"),
        ("client:b", "ws4/engine-a", "legacy"): ("f-legacy", [("s", {"n": "f-legacy"})], ""),
        ("client:a", "ws4/engine-a", "both"): ("f-new", [("s", {"n": "f-new"})], "client:a"),
    }
    async with connection(pool) as conn:
        assert seen.known == await inbox.known(conn, events)  # one definition, read both ways
    assert seen.weeks == {}


async def test_a_key_named_twice_in_a_batch_is_known_once_its_own_row_winning(
    pool: asyncpg.Pool,
) -> None:
    await applied(pool, "client:a", "twice", "f-new")
    await applied(pool, "", "twice", "f-old")
    events = [event("a", "twice"), event("a", "twice")]  # rows in any order, twice each
    seen = await store.forwarding(pool, events=events, days=[])
    assert seen.known == {
        ("client:a", "ws4/engine-a", "twice"): ("f-new", [("s", {"n": "f-new"})], "client:a")
    }


async def test_the_outbox_waits_while_it_holds_a_row(pool: asyncpg.Pool) -> None:
    events = [event("a", "1")]
    assert (await store.forwarding(pool, events=events, days=[])).waiting is False
    await pool.execute("INSERT INTO outbox (stream, fields) VALUES ('s', '{}')")
    waits = await store.forwarding(pool, events=events, days=[])
    assert waits.waiting is True
    assert waits.known == {}
    await pool.execute("DELETE FROM outbox")  # the relay confirmed it
    assert (await store.forwarding(pool, events=events, days=[])).waiting is False


async def test_week_types_of_several_days_each_the_latest_classified_week_by_then(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(
        "INSERT INTO week_types (week_start, week_type, confidence, source, event_id) VALUES"
        " ('2026-01-05', 'P-EW', 0.9, 'ws2', 'w1'), ('2026-01-12', 'C-RO', 0.8, 'ws2', 'w2')"
    )
    days = [date(2026, 1, 13), date(2026, 1, 4), date(2026, 1, 11), date(2026, 1, 5)]
    await applied(pool, "client:a", "1", "f")
    seen = await store.forwarding(pool, events=[event("a", "1"), event("a", "2")], days=days)
    assert seen.weeks == {
        date(2026, 1, 4): None,  # before any classified week
        date(2026, 1, 5): "P-EW",
        date(2026, 1, 11): "P-EW",
        date(2026, 1, 13): "C-RO",
    }
    assert set(seen.known) == {("client:a", "ws4/engine-a", "1")}  # one row per known row
    assert seen.waiting is False
    for day, week in seen.weeks.items():
        assert await store.week_type_on(pool, day=day) == week
