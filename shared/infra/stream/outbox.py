"""The outbox relay: publishes committed events to Redis in commit order, at least once.

Where Redis confirms durability with WAITAOF (an fsync of its log, up to a second away with
`appendfsync everysec`), the relay does not wait for one round's confirmation before it
publishes the next: each round's XADDs are answered first (so rounds stay in order), then its
WAITAOF is awaited beside the next rounds, and its rows are deleted once confirmed. To keep
rounds in flight, the publishing replica holds the relay lock for its session (one relay per
schema publishes at a time, so replicas cannot reorder an account's events)."""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from shared.infra.runtime import metrics, tracing
from shared.infra.runtime.db import session, transaction
from shared.infra.runtime.redisclient import cluster
from shared.infra.stream.durability import WAITAOF, Durability

log = logging.getLogger(__name__)
IN_FLIGHT = 16  # rounds published and awaiting their WAITAOF at once
# While it listens for commits (migration 004), the lock holder looks on its own only this
# often: a notification is the wake-up, this the safety net.
LISTENING_IDLE_SECONDS = 1.0
DURABLE_BATCHES = 10  # a round's size (in batches) when it waits for its own WAITAOF
# The oldest rows not already in flight: seq ranges (a multirange is searched, not scanned).
_SELECT = (
    "SELECT seq, stream, fields FROM outbox WHERE NOT $2::int8multirange @> seq"
    " ORDER BY seq LIMIT $1"
)


def runs(seqs: Sequence[int]) -> list[asyncpg.Range[int]]:
    """Ascending `seqs` as ranges of consecutive numbers."""
    found: list[asyncpg.Range[int]] = []
    start = prev = None
    for seq in seqs:
        if prev is not None and seq != prev + 1:
            found.append(asyncpg.Range(start, prev + 1))
            start = None
        start = seq if start is None else start
        prev = seq
    if prev is not None:
        found.append(asyncpg.Range(start, prev + 1))
    return found


class Relay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        *,
        name: str,
        sign: Callable[[list[dict[str, str]]], list[dict[str, str]]],
        batch: int = 1000,
        durability: Durability | None = None,
    ) -> None:
        self.pool, self.redis, self.batch, self.name = pool, redis, batch, name
        self.sign = sign  # every entry leaves signed by this service (a group per signature)
        self.durability = durability or Durability()
        self.lock_key = int.from_bytes(
            hashlib.sha256(f"relay:{name}".encode()).digest()[:8], "big", signed=True
        )
        self.wake = asyncio.Event()
        self.channel = f"alluse_outbox_{name}"  # notified by every commit with outbox rows
        self.published = 0
        self.stopped = False
        self.in_flight: dict[int, list[asyncpg.Range[int]]] = {}  # seqs published, per round,
        self.rounds = 0  # their confirmation awaited
        self.confirming: set[asyncio.Task[None]] = set()

    def _commands(self, rows: Sequence[asyncpg.Record]) -> list[tuple[Any, ...]]:
        signed = self.sign([orjson.loads(row["fields"]) for row in rows])
        return [
            ("XADD", row["stream"], "*", *(x for kv in fields.items() for x in kv))
            for row, fields in zip(rows, signed, strict=True)
        ]

    async def publish_once(self) -> int:
        """One round, confirmed before it returns (holding the lock for its transaction)."""
        async with transaction(self.pool) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self.lock_key):
                return 0
            if not await self.durability.ready(self.redis):
                return 0  # Redis cannot confirm durability: rows are kept
            # Waiting for an fsync (up to a second with everysec) costs the same for any batch:
            # unpipelined (a cluster), take more per round, or the relay falls behind.
            many = DURABLE_BATCHES if self.durability.method == WAITAOF else 1
            rows = await conn.fetch(_SELECT, self.batch * many, [])
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)  # one connection: WAITAOF covers it
            for command in self._commands(rows):
                pipe.execute_command(*command)
            waits = self.durability.wait(self.redis, pipe, {row["stream"] for row in rows})
            with tracing.each("relay", (row["fields"] for row in rows)):
                replies = await pipe.execute()
            waits.confirm(replies)  # raises: rows kept, published again
            # A crash between XADD and this delete publishes again: consumers dedupe by event id.
            await conn.execute(
                "DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows]
            )
        self._count(len(rows))
        return len(rows)

    def _count(self, n: int) -> None:
        self.published += n
        metrics.RELAYED.labels(self.name).inc(n)

    async def send(self, lead: asyncpg.Connection) -> int:
        """One pipelined round (WAITAOF only), as the lock holder: its XADDs answered, its
        confirmation and delete left to a task of their own."""
        flying = [r for rs in self.in_flight.values() for r in rs]
        rows = await lead.fetch(_SELECT, self.batch, flying)
        if not rows:
            return 0
        pool = self.redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            with tracing.each("relay", (row["fields"] for row in rows)):
                await conn.send_packed_command(conn.pack_commands(self._commands(rows)))
                for _ in rows:
                    await conn.read_response()  # an error reply raises: nothing is deleted
            await conn.send_command("WAITAOF", 1, 0, self.durability.timeout_ms)
        except BaseException:
            await conn.disconnect()
            await pool.release(conn)
            raise
        seqs = [r["seq"] for r in rows]
        self.rounds += 1
        self.in_flight[self.rounds] = runs(seqs)
        task = asyncio.create_task(self._confirm(conn, seqs, self.rounds), name="relay confirm")
        self.confirming.add(task)
        task.add_done_callback(self.confirming.discard)
        return len(rows)

    async def _confirm(self, conn: Any, seqs: list[int], round_: int) -> None:
        pool = self.redis.connection_pool
        try:
            try:
                reply = await conn.read_response()
            except BaseException:
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
            self.durability.confirm(reply)  # raises: rows kept, published again
            await self.pool.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", seqs)
            self._count(len(seqs))
        except Exception as exc:  # kept in the outbox: the next rounds publish them again
            log.warning("outbox relay: %s; publishing again", exc)
            self.wake.set()
        finally:
            del self.in_flight[round_]

    async def observe(self) -> None:
        """The outbox backlog gauge: committed events the relay has not published yet."""
        backlog = await self.pool.fetchval("SELECT count(*) FROM outbox")
        metrics.OUTBOX_BACKLOG.labels(self.name).set(backlog)

    async def run(self, idle_seconds: float = 0.05) -> None:
        while not self.stopped:
            # Cleared before reading, so a commit that lands while we publish wakes us at once.
            self.wake.clear()
            try:
                if await self.durability.ready(self.redis) and self._pipelined():
                    moved = await self._lead(idle_seconds)
                else:
                    moved = await self.publish_once()
            except Exception as exc:  # the relay outlives any outage; it retries
                log.warning("outbox relay: %s; retrying", exc)
                moved = 0
                await asyncio.sleep(1)
            if self.durability.problem:  # kept until Redis can confirm; /readyz says why
                await asyncio.sleep(1)
            elif moved < self.batch:
                await self._idle(idle_seconds)

    def _pipelined(self) -> bool:
        """Rounds are pipelined behind WAITAOF on one server; a cluster's relay confirms each
        round before the next (one WAITAOF per node written to, see durability.py)."""
        return self.durability.method == WAITAOF and cluster(self.redis) is None

    async def _lead(self, idle_seconds: float) -> int:
        """Pipelined rounds while this replica holds the relay lock and Redis confirms with
        WAITAOF; returns when either stops, every round in flight settled."""
        moved = 0
        async with session(self.pool) as lead:  # reset in full on release
            if not await lead.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                return 0
            if await self._listen(lead):
                idle_seconds = LISTENING_IDLE_SECONDS
            try:
                while not self.stopped and self._pipelined():
                    self.wake.clear()
                    while len(self.confirming) >= IN_FLIGHT:
                        await asyncio.wait(self.confirming, return_when=asyncio.FIRST_COMPLETED)
                    sent = await self.send(lead)
                    moved += sent
                    if sent < self.batch:
                        await self._idle(idle_seconds)
                    if not await self.durability.ready(self.redis):
                        break
            finally:
                if self.confirming:
                    await asyncio.wait(self.confirming)
                with contextlib.suppress(Exception):
                    await lead.remove_listener(self.channel, self._notified)
                with contextlib.suppress(Exception):
                    await lead.execute("SELECT pg_advisory_unlock($1)", self.lock_key)
        return moved

    async def _listen(self, lead: asyncpg.Connection) -> bool:
        """Be woken by every commit that wrote outbox rows (any process); False if the schema
        has no such trigger yet or LISTEN is refused: then the relay looks every 50 ms."""
        try:
            if not await lead.fetchval("SELECT to_regproc('outbox_committed') IS NOT NULL"):
                return False
            await lead.add_listener(self.channel, self._notified)
        except Exception as exc:
            log.warning("outbox relay: not listening for commits (%s); polling", exc)
            return False
        return True

    def _notified(self, *_: object) -> None:
        self.wake.set()

    async def _idle(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()
