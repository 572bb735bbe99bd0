"""Plain redis-py helpers for tests: XADD a command as any producer would, read outcomes back."""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis


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


async def outcomes(
    redis: Redis, stream: str, cause_id: str, *, want: int = 1, timeout: float = 10
) -> list[dict[str, Any]]:
    """Events on `stream` caused by `cause_id`, waiting until `want` of them have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        found = [decoded(f) for _, f in await redis.xrange(stream)]
        found = [e for e in found if e.get("causationid") == cause_id]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def reply(redis: Redis, stream: str, *, timeout: float = 10) -> dict[str, Any]:
    """The first reply on a private reply stream."""
    got = await redis.xread({stream: "0"}, count=1, block=int(timeout * 1000))
    assert got, f"no reply on {stream} within {timeout}s"
    return decoded(got[0][1][0][1])
