"""Plain redis-py helpers for tests: XADD a command as any producer would, read outcomes back."""

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import redis as sync_redis
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from tests.support.waiting import until


def ce(
    type_: str,
    data: dict[str, Any],
    *,
    source: str = "tests/producer",
    id_: str | None = None,
    **attrs: str,
) -> dict[str, str]:
    return {
        "specversion": "1.0",
        "id": id_ or uuid.uuid4().hex,
        "source": source,
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        **attrs,
        "data": json.dumps(data),
    }


Entry = tuple[bytes, dict[bytes, bytes]]  # (entry id, fields) as a client without decoding reads


def encodable(fields: Mapping[str, str] | Mapping[bytes, bytes]) -> dict[FieldT, EncodableT]:
    """Fields as redis-py's XADD is typed to take them: an invariant dict of its own unions,
    which no dict[str, str] is; a copy made under that type is (and is what gets sent)."""
    return dict[FieldT, EncodableT](fields.items())


async def xadd(
    redis: Redis, stream: str, fields: Mapping[str, str] | Mapping[bytes, bytes], **options: Any
) -> bytes:
    """XADD as any producer does it; returns the entry id."""
    return cast(bytes, await redis.xadd(stream, encodable(fields), **options))


def xadd_sync(
    redis: sync_redis.Redis, stream: str, fields: Mapping[str, str] | Mapping[bytes, bytes]
) -> bytes:
    return cast(bytes, redis.xadd(stream, encodable(fields)))


async def entries(redis: Redis, stream: str, start: str = "-", end: str = "+") -> list[Entry]:
    """XRANGE: redis-py's annotation covers every response mode; the tests' clients do not
    decode, so entries come as bytes."""
    return cast(list[Entry], await redis.xrange(stream, start, end))


def entries_sync(redis: sync_redis.Redis, stream: str) -> list[Entry]:
    return cast(list[Entry], redis.xrange(stream))


async def read(
    redis: Redis, streams: Mapping[str, str | bytes], *, count: int | None = None, block: int = 0
) -> list[tuple[bytes, list[Entry]]]:
    """XREAD, typed as `entries` is: [(stream, [(entry id, fields), ...]), ...]."""
    got = await redis.xread(dict[KeyT, StreamIdT](streams.items()), count=count, block=block)
    return cast(list[tuple[bytes, list[Entry]]], got or [])


def read_sync(
    redis: sync_redis.Redis, streams: Mapping[str, str | bytes], *, count: int, block: int
) -> list[tuple[bytes, list[Entry]]]:
    got = redis.xread(dict[KeyT, StreamIdT](streams.items()), count=count, block=block)
    return cast(list[tuple[bytes, list[Entry]]], got or [])


async def read_group(
    redis: Redis, group: str, consumer: str, stream: str, *, count: int | None = None
) -> list[Entry]:
    """XREADGROUP of new entries (">") on one stream, as a service's consumer reads them."""
    got = await redis.xreadgroup(group, consumer, {stream: ">"}, count=count)
    return [
        entry for _, batch in cast(list[tuple[bytes, list[Entry]]], got or []) for entry in batch
    ]


def decoded(fields: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in fields.items()}
    out["data"] = json.loads(out["data"])
    return out


async def caused(redis: Redis, stream: str, cause_id: str) -> list[dict[str, Any]]:
    """The events on `stream` caused by `cause_id`, as they are now (one read, no waiting)."""
    found = [decoded(f) for _, f in await entries(redis, stream)]
    return [e for e in found if e.get("causationid") == cause_id]


async def outcomes(
    redis: Redis, stream: str, cause_id: str, *, want: int = 1, timeout: float = 10
) -> list[dict[str, Any]]:
    """Events on `stream` caused by `cause_id`, waiting until `want` of them have arrived.

    Waiting for none would return at once and prove nothing: a test of an absence waits on a
    barrier instead (tests/support/barriers.py), then reads once with `caused`."""
    if want < 1:
        raise ValueError("an absence is checked after a barrier (barriers.py), not by waiting")
    return await until(
        lambda: caused(redis, stream, cause_id),
        lambda found: len(found) >= want,
        timeout=timeout,
        what=f"events caused by {cause_id} on {stream} (want {want})",
    )


async def reply(redis: Redis, stream: str, *, timeout: float = 10) -> dict[str, Any]:
    """The first reply on a private reply stream."""
    got = await read(redis, {stream: "0"}, count=1, block=int(timeout * 1000))
    assert got, f"no reply on {stream} within {timeout}s"
    return decoded(got[0][1][0][1])
