"""The audit chain's head, published on AUDIT_HEADS and in the log, and read back to verify.

A head published before a rewrite pins the chain: `verify-audit` compares each published
(seq, hash) with the stored record, so even a chain re-computed with the key fails, and a
chain shorter than a head published before lost its tail. Each head is signed with the
security service's key (as every entry it writes) and published every few seconds while the
chain grows (ALLUSE_AUDIT_HEAD_EVERY): a head anyone else wrote onto the stream is reported as
forged and pins nothing, and the window in which dropped rows go unseen is that short.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from services.security import audit_store
from services.security.chain import Head
from shared.contracts.trust import SECURITY
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of

log = logging.getLogger(__name__)


Sign = Callable[[dict[str, str]], dict[str, str]]


@dataclass(frozen=True)
class Forged:
    """An entry on the heads stream whose security-service signature does not hold."""

    published: str
    problem: str


async def publish(
    pool: asyncpg.Pool,
    redis: Redis,
    stream: str,
    last: int,
    sign: Sign,
    pinned: list[Head] | None = None,
) -> int:
    """Publish the head, signed, if the chain grew past `last`; returns the seq now published.
    `pinned`: the service's own memory of it, which deleting the stream cannot erase."""
    async with pool.acquire() as conn:
        head = await audit_store.audit_head(conn, lock=False)
    seq, hash_ = int(head["seq"]), str(head["hash"])
    if seq <= last:
        return last
    now = datetime.now(UTC).isoformat()
    fields = sign({"seq": str(seq), "hash": hash_, "time": now})
    # Trimmed by age (ALLUSE_AUDIT_HEADS_RETENTION) with the service's other streams.
    await redis.xadd(stream, fields)  # type: ignore[arg-type]
    log.info("audit chain head", extra={"seq": seq, "hash": hash_})
    if pinned is not None:
        pinned[:] = [Head(seq, hash_, f"{now} (this process)")]  # the newest pins all before
    return seq


async def publish_forever(
    pool: asyncpg.Pool, redis: Redis, stream: str, every: float, sign: Sign, pinned: list[Head]
) -> None:
    last = 0
    while True:
        with contextlib.suppress(Exception):  # the next round publishes what this one missed
            last = await publish(pool, redis, stream, last, sign, pinned)
        await asyncio.sleep(every)


async def published(redis: Redis, stream: str, keys: KeySet) -> tuple[list[Head], list[Forged]]:
    """Every head still on the stream signed by the security service, oldest first, and every
    entry that is not (forged: it pins nothing, and is reported as what it is).

    KeysUnavailable passes through: without the keys no head can be told from a forgery.
    """
    heads: list[Head] = []
    forged: list[Forged] = []
    after = "-"
    while entries := await redis.xrange(stream, min=after, count=1000):
        for entry_id, raw in entries:
            fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
            try:
                signer = await signer_of(keys, fields)
                if signer != SECURITY:
                    raise Rejected("forbidden", f"signed by the {signer} service, not security")
            except Rejected as r:
                forged.append(Forged(_text(entry_id), r.reason))
                continue
            head = _head(_text(entry_id), fields)
            if head is not None:
                heads.append(head)
        after = "(" + _text(entries[-1][0])
    return heads, forged


def _head(entry_id: str, fields: dict[str, str]) -> Head | None:
    try:
        return Head(int(fields["seq"]), fields["hash"], f"{fields['time']} ({entry_id})")
    except (KeyError, ValueError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
