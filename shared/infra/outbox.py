"""The outbox relay: publishes committed events to Redis in commit order, at least once."""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

import asyncpg
import orjson
from redis.asyncio import Redis

from shared.infra import metrics, tracing
from shared.infra.db import transaction
from shared.infra.durability import WAITAOF, Durability

log = logging.getLogger(__name__)
DURABLE_BATCHES = 10


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
        # One relay per schema publishes at a time, so replicas cannot reorder an account's events.
        self.lock_key = int.from_bytes(
            hashlib.sha256(f"relay:{name}".encode()).digest()[:8], "big", signed=True
        )
        self.wake = asyncio.Event()
        self.published = 0
        self.stopped = False

    async def publish_once(self) -> int:
        async with transaction(self.pool) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self.lock_key):
                return 0
            if not await self.durability.ready(self.redis):
                return 0  # Redis cannot confirm durability: rows are kept
            # Waiting for an fsync (up to a second with everysec) costs the same for any batch:
            # take more per round then, or the relay falls behind what the service commits.
            limit = (
                self.batch * DURABLE_BATCHES if self.durability.method == WAITAOF else self.batch
            )
            rows = await conn.fetch(
                "SELECT seq, stream, fields FROM outbox ORDER BY seq LIMIT $1", limit
            )
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)  # one connection: WAITAOF covers it
            signed = self.sign([orjson.loads(row["fields"]) for row in rows])
            for row, fields in zip(rows, signed, strict=True):
                pipe.xadd(row["stream"], fields)  # type: ignore[arg-type]
            waits = self.durability.wait(self.redis, pipe, {row["stream"] for row in rows})
            with tracing.each("relay", (row["fields"] for row in rows)):
                replies = await pipe.execute()
            waits.confirm(replies)  # raises: rows kept, published again
            # A crash between XADD and this delete publishes again: consumers dedupe by event id.
            await conn.execute(
                "DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows]
            )
        self.published += len(rows)
        metrics.RELAYED.labels(self.name).inc(len(rows))
        return len(rows)

    async def observe(self) -> None:
        """The outbox backlog gauge: committed events the relay has not published yet."""
        backlog = await self.pool.fetchval("SELECT count(*) FROM outbox")
        metrics.OUTBOX_BACKLOG.labels(self.name).set(backlog)

    async def run(self, idle_seconds: float = 0.05) -> None:
        while not self.stopped:
            # Cleared before reading, so a commit that lands while we publish wakes us at once.
            self.wake.clear()
            try:
                moved = await self.publish_once()
            except Exception as exc:  # the relay outlives any outage; it retries
                log.warning("outbox relay: %s; retrying", exc)
                moved = 0
                await asyncio.sleep(1)
            if self.durability.problem:  # kept until Redis can confirm; /readyz says why
                await asyncio.sleep(1)
            elif moved < self.batch:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle_seconds):
                        await self.wake.wait()
