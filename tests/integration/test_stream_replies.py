"""Stream reads over either protocol a Redis URL may ask for (`?protocol=3`): RESP2 gives an
XREAD's streams as a list, RESP3 as a map with one more level; the platform reads both the
same way (`streams_read`), and ordered consumption runs on either."""

import asyncio
from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from services.integration.direct import write_placed
from shared.infra.runtime.redisclient import streams_read
from shared.infra.runtime.settings import Settings
from shared.infra.stream.durability import Durability
from shared.infra.stream.messaging import Entry, Outcome
from shared.infra.stream.partitions import Partitioned
from tests.support.streams import xadd
from tests.support.waiting import until


def client(settings: Settings, protocol: int) -> Redis:
    glue = "&" if "?" in settings.redis_url else "?"
    return Redis.from_url(f"{settings.redis_url}{glue}protocol={protocol}")


@pytest.mark.parametrize("protocol", [2, 3])
async def test_xread_and_xreadgroup_read_as_stream_and_entries(
    settings: Settings, redis: Redis, protocol: int
) -> None:
    a, b = settings.streams.key("replies.a"), settings.streams.key("replies.b")
    ids = [await xadd(redis, a, {"n": "1"}), await xadd(redis, a, {"n": "2"})]
    other = await xadd(redis, b, {"n": "3"})
    await redis.xgroup_create(a, "g", id="0")
    r = client(settings, protocol)
    try:
        read = streams_read(await r.xread({a: "0-0", b: "0-0"}, count=10))
        grouped = streams_read(await r.xreadgroup("g", "c", {a: ">"}, count=10))
        assert streams_read(await r.xread({b: other}, count=10)) == []  # nothing after it
    finally:
        await r.aclose()
    assert [
        (k.encode() if isinstance(k, str) else k, [i for i, _ in rows]) for k, rows in read
    ] == [
        (a.encode(), ids),
        (b.encode(), [other]),
    ]
    assert [[f for _, f in rows] for _, rows in grouped] == [[{b"n": b"1"}, {b"n": b"2"}]]


async def test_ordered_consumption_runs_over_resp3(settings: Settings, redis: Redis) -> None:
    own = settings.model_copy(update={"partitions": 4})
    applied: list[bytes] = []

    async def process(entries: Sequence[Entry]) -> Outcome:
        applied.extend(f[b"n"] for _, f in entries)
        return Outcome(ack=[i for i, _ in entries])

    r = client(own, 3)
    part = Partitioned(redis=r, settings=own, stream=own.streams.key("resp3"), process=process)
    task = asyncio.create_task(part.run())

    async def done() -> list[bytes]:
        return applied

    try:
        for n in range(5):
            await xadd(redis, part.stream, {"subject": "acct-a", "n": str(n)})
        await until(done, equals=[str(n).encode() for n in range(5)])
        # Written straight into the partition (as the integration service writes effects).
        signed = [{"subject": "acct-a", "n": "5"}]
        assert await write_placed(r, Durability(mode="off"), part.placement, signed)
        await until(done, equals=[str(n).encode() for n in range(6)])
    finally:
        part.stopped = True
        await task
        await r.aclose()
