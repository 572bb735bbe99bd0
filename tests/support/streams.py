"""Plain redis-py helpers for tests: XADD a command as any producer would, read outcomes back."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

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


def decoded(fields: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in fields.items()}
    out["data"] = json.loads(out["data"])
    return out


async def caused(redis: Redis, stream: str, cause_id: str) -> list[dict[str, Any]]:
    """The events on `stream` caused by `cause_id`, as they are now (one read, no waiting)."""
    found = [decoded(f) for _, f in await redis.xrange(stream)]
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
    got = await redis.xread({stream: "0"}, count=1, block=int(timeout * 1000))
    assert got, f"no reply on {stream} within {timeout}s"
    return decoded(got[0][1][0][1])
