"""Retention: nothing the platform writes grows without bound (docs/architecture.md "Retention").

- Input streams the platform owns (commands, queries, internal effects and events): each entry
  is deleted with its acknowledgement once its outcome is committed (StreamConsumer).
- Output and upstream streams, and every DLQ: trimmed by age (XTRIM MINID), never past an
  entry a platform consumer group has not yet acknowledged.
- The inbox: rows older than the deduplication window, deleted in batches.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retained:
    """A stream kept for `age`; entries `groups` (platform consumer groups) still need are kept."""

    stream: str
    age: timedelta
    groups: frozenset[str] = frozenset()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _older(a: str, b: str) -> str:
    """The smaller of two stream ids."""
    return min(a, b, key=lambda i: tuple(int(p) for p in i.split("-")))


async def floor(redis: Redis, stream: str, groups: frozenset[str]) -> str | None:
    """The oldest entry one of `groups` still needs: its oldest pending entry, or (nothing
    pending) the one after its last delivered. None when no such group reads the stream."""
    oldest = None
    for info in await redis.xinfo_groups(stream):
        name = _text(info["name"])
        if name not in groups:
            continue
        ms, seq = _text(info["last-delivered-id"]).split("-")
        needed = f"{ms}-{int(seq) + 1}"
        if info["pending"]:
            summary = await redis.xpending(stream, name)
            if summary["min"] is not None:  # else acknowledged in the meantime
                needed = _older(needed, _text(summary["min"]))
        oldest = needed if oldest is None else _older(oldest, needed)
    return oldest


async def trim(redis: Redis, kept: Retained) -> int:
    """Remove entries older than `kept.age` by the server's clock; returns how many."""
    if not await redis.exists(kept.stream):
        return 0
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    cutoff = f"{max(0, now_ms - int(kept.age.total_seconds() * 1000))}-0"
    needed = await floor(redis, kept.stream, kept.groups)
    minid = _older(cutoff, needed) if needed else cutoff
    return int(await redis.xtrim(kept.stream, minid=minid, approximate=False))


async def prune_inbox(pool: asyncpg.Pool, window: timedelta, *, batch: int = 5000) -> int:
    """Delete inbox rows applied longer ago than `window`, `batch` at a time (short locks)."""
    total = 0
    while True:
        deleted: int = await pool.fetchval(
            "WITH doomed AS (SELECT writer, source, id FROM inbox"
            " WHERE applied_at < now() - $1::interval LIMIT $2),"
            " gone AS (DELETE FROM inbox i USING doomed d"
            " WHERE i.writer = d.writer AND i.source = d.source AND i.id = d.id RETURNING 1)"
            " SELECT count(*) FROM gone",
            window,
            batch,
        )
        total += deleted
        if deleted < batch:
            return total


@dataclass
class Janitor:
    """Trims a service's retained streams and prunes its inbox every `every`."""

    redis: Redis
    pool: asyncpg.Pool
    retained: list[Retained]
    dedup_window: timedelta
    every: timedelta
    # Streams known only at run time (each lane's outcome stream), listed afresh each round.
    found: list[Callable[[], Awaitable[list[Retained]]]] = field(default_factory=list)

    async def once(self) -> dict[str, int]:
        kept = list(self.retained)
        for more in self.found:
            kept += await more()
        removed = {k.stream: await trim(self.redis, k) for k in kept}
        removed["inbox"] = await prune_inbox(self.pool, self.dedup_window)
        return removed

    async def run(self) -> None:
        while True:
            try:
                removed = await self.once()
                if any(removed.values()):
                    log.info("retention applied", extra={"removed": removed})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # outlives outages; the next round catches up
                log.warning("retention: %s; will try again", exc)
            await asyncio.sleep(self.every.total_seconds())
