"""A pooled connection is reset on release only as far as it needs: every one has an open
transaction rolled back, and only one lent as a `session` (the relay's lock holder) has its
session reset in full, however its user ended. Real PostgreSQL, one connection per pool, so
the connection looked at after a release is the one released (its backend pid says so)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery
from asyncpg.exceptions import InterfaceWarning
from redis.asyncio import Redis

from shared.infra.runtime.db import connection, create_pool, migrate, session
from shared.infra.runtime.settings import Settings
from shared.infra.stream.outbox import Relay

ADVISORY = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1"


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    schema = f"reset_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, Path(__file__).parent / "toy_migrations")
    one = await create_pool(settings.database_url, schema, max_size=1)
    yield one
    await one.close()


class Sent:
    """Every statement the connection sends, the pool's reset included, while it logs."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: LoggedQuery) -> None:
        self.queries.append(record.query)


async def test_an_ordinary_release_sends_nothing_more_and_rolls_back_an_open_transaction(
    pool: asyncpg.Pool,
) -> None:
    sent = Sent()
    async with connection(pool) as conn:
        pid = conn.get_server_pid()
        conn.add_query_logger(sent)
        assert await conn.fetchval("SELECT 1") == 1
    assert sent.queries == ["SELECT 1"]  # released without a round trip of its own

    async with connection(pool) as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("INSERT INTO counter (name, value) VALUES ('left', 1)")
        # released with its transaction open (asyncpg reports that to the loop): rolled back
    async with connection(pool) as conn:
        assert conn.get_server_pid() == pid
        assert await conn.fetchval("SELECT count(*) FROM counter") == 0
        conn.remove_query_logger(sent)
    assert sent.queries[1:] == [
        "BEGIN;",
        "INSERT INTO counter (name, value) VALUES ('left', 1)",
        "ROLLBACK",
        "SELECT count(*) FROM counter",
    ]


async def test_a_session_is_reset_in_full_on_release_and_only_that_release(
    pool: asyncpg.Pool,
) -> None:
    schema = await pool.fetchval("SHOW search_path")
    sent = Sent()
    async with session(pool) as conn:
        pid = conn.get_server_pid()
        conn.add_query_logger(sent)
        await conn.execute("SELECT pg_advisory_lock(42)")
        await conn.execute("LISTEN alluse_reset_test")
        await conn.execute("SET search_path TO pg_catalog")
    async with connection(pool) as conn:
        assert conn.get_server_pid() == pid  # the same session, reset (not closed)
        assert await conn.fetchval(ADVISORY, pid) == 0
        assert await conn.fetch("SELECT pg_listening_channels()") == []
        assert await conn.fetchval("SHOW search_path") == schema  # the pool's own again
    async with connection(pool) as conn:
        conn.remove_query_logger(sent)
    resets = [q for q in sent.queries if "pg_advisory_unlock_all" in q]
    assert len(resets) == 1  # the session's release; the ordinary ones after it send none


async def never() -> None:
    await asyncio.Event().wait()


async def test_the_relay_leader_holds_no_lock_and_listens_to_nothing_once_released_even_cancelled(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock holder cancelled while it waits for its rounds' confirmations (as a shutdown
    does after its grace), before its own clean-up unlocks and stops listening."""
    name = await pool.fetchval("SELECT current_schema()")
    relay = Relay(pool, redis, name=name, sign=list)
    held = asyncio.Event()
    lead_pid: list[int] = []
    listen = relay._listen

    async def listening(lead: asyncpg.Connection) -> bool:
        listened = await listen(lead)
        lead_pid.append(lead.get_server_pid())
        held.set()
        return listened

    monkeypatch.setattr(relay, "_listen", listening)
    unconfirmed = asyncio.create_task(never())  # a round awaiting its WAITAOF
    relay.confirming.add(unconfirmed)
    lead = asyncio.create_task(relay._lead(0.05))
    await held.wait()
    (pid,) = lead_pid
    other = await asyncpg.connect(settings.database_url)
    try:
        assert await other.fetchval(ADVISORY, pid) == 1  # the relay lock, on the session
        lead.cancel()
        # Its own clean-up never ran: asyncpg sees the listener still there at the release.
        with (
            pytest.warns(InterfaceWarning, match="notification listener"),
            pytest.raises(asyncio.CancelledError),
        ):
            await lead
        unconfirmed.cancel()
        async with connection(pool) as conn:
            assert conn.get_server_pid() == pid  # the leader's session, kept and reset
            assert await conn.fetch("SELECT pg_listening_channels()") == []
        assert await other.fetchval(ADVISORY, pid) == 0
    finally:
        await other.close()
