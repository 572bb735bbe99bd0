"""The audit chain's head, published on AUDIT_HEADS and in the log, and read back to verify.

A head published before a rewrite pins the chain: `verify-audit` compares each published
(seq, hash) with the stored record, so even a chain re-computed with the key fails.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from services.security import audit_store
from services.security.chain import Head

log = logging.getLogger(__name__)


async def publish(pool: asyncpg.Pool, redis: Redis, stream: str, last: int) -> int:
    """Publish the head if the chain grew past `last`; returns the seq now published."""
    async with pool.acquire() as conn:
        head = await audit_store.audit_head(conn, lock=False)
    seq, hash_ = int(head["seq"]), str(head["hash"])
    if seq <= last:
        return last
    now = datetime.now(UTC).isoformat()
    fields = {"seq": str(seq), "hash": hash_, "time": now}
    # Trimmed by age (ALLUSE_AUDIT_HEADS_RETENTION) with the service's other streams.
    await redis.xadd(stream, fields)  # type: ignore[arg-type]
    log.info("audit chain head", extra={"seq": seq, "hash": hash_})
    return seq


async def publish_forever(pool: asyncpg.Pool, redis: Redis, stream: str, every: float) -> None:
    last = 0
    while True:
        with contextlib.suppress(Exception):  # the next round publishes what this one missed
            last = await publish(pool, redis, stream, last)
        await asyncio.sleep(every)


async def published(redis: Redis, stream: str) -> list[Head]:
    """Every head still on the stream, oldest first; malformed entries are skipped."""
    heads, after = [], "-"
    while entries := await redis.xrange(stream, min=after, count=1000):
        for entry_id, fields in entries:
            head = _head(_text(entry_id), {_text(k): _text(v) for k, v in (fields or {}).items()})
            if head is not None:
                heads.append(head)
        after = "(" + _text(entries[-1][0])
    return heads


def _head(entry_id: str, fields: dict[str, str]) -> Head | None:
    try:
        return Head(int(fields["seq"]), fields["hash"], f"{fields['time']} ({entry_id})")
    except (KeyError, ValueError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
