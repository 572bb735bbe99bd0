"""What soak samples every interval: Redis memory, every stream's length, consumer lag and
pending, inbox/outbox/ledger rows, and each service's resident memory."""

import contextlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.contracts.streams import REPLY
from shared.tooling.launch import Service

MB = 1024 * 1024
SCHEMAS = ("account", "integration", "security")


@dataclass
class Sample:
    at: float  # seconds since the load started
    used_memory: int
    streams: dict[str, int]
    lag: int
    pending: int
    rows: dict[str, int]  # "inbox", "outbox", "ledger"
    rss: dict[str, int] = field(default_factory=dict)


async def _lag(redis: Redis, stream: str, group: dict[Any, Any]) -> int:
    """Entries not yet delivered to the group: Redis >= 7 says; older servers are counted."""
    if group.get("lag") is not None:
        return int(group["lag"])
    last = group["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else str(last)
    after: Any = await redis.xrange(stream, min=f"({last}", count=100_000)
    return len(after)


async def take(redis: Redis, dsn: str, services: dict[str, Service], at: float) -> Sample:
    info: Any = await redis.info("memory")
    streams: dict[str, int] = {}
    lag = pending = 0
    async for key in redis.scan_iter(count=1000, _type="stream"):
        name = key.decode()
        try:
            groups = await redis.xinfo_groups(name)
        except ResponseError:  # gone since the scan (a reply stream expires, a lane resets)
            continue
        row = _row(name)
        streams[row] = streams.get(row, 0) + int(await redis.xlen(name))
        for group in groups:
            pending += int(group["pending"])
            lag += await _lag(redis, name, group)
    return Sample(
        at, int(info["used_memory"]), streams, lag, pending, await _rows(dsn), _rss(services)
    )


def _row(stream: str) -> str:
    """The table's row of a stream: a query's own reply stream (one per query, expiring) is
    counted in its lane's, `alluse.reply.<lane>.*`."""
    at = stream.find(REPLY)
    if at < 0:
        return stream
    lane = stream[at + len(REPLY) :].split(".", 1)[0]
    return f"{stream[:at]}{REPLY}{lane}.*"


async def _rows(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        counts = {"inbox": 0, "outbox": 0}
        for schema in SCHEMAS:
            for table in counts:
                with contextlib.suppress(asyncpg.UndefinedTableError):
                    counts[table] += await conn.fetchval(f'SELECT count(*) FROM "{schema}".{table}')  # noqa: S608 - constant names
        counts["ledger"] = await conn.fetchval("SELECT count(*) FROM account.transactions")
        return counts
    finally:
        await conn.close()


def _rss(services: dict[str, Service]) -> dict[str, int]:
    out = {}
    for name, service in services.items():
        with contextlib.suppress(psutil.Error):
            out[name] = psutil.Process(service.pid).memory_info().rss
    return out


def plateaued(values: list[float], slack: float) -> bool:
    """Flat over the last half: its second quarter peaks no higher than its first (plus 10 %
    and `slack`); steady growth, however slow, fails."""
    half = values[len(values) // 2 :]
    if len(half) < 2:
        return False
    first, second = half[: len(half) // 2], half[len(half) // 2 :]
    return max(second) <= max(first) * 1.10 + slack
