"""Ordered consumption on real Redis: partitions shared out when a replica joins, and the
gauges (per partition, entries waiting and the age of the oldest; for the public stream,
entries not yet routed and routed but not yet applied)."""

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Outcome
from shared.infra.stream.partitions import Partitioned
from tests.support.streams import xadd


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def never(entries: object) -> Outcome:
    raise AssertionError("nothing is consumed here")


def replica(settings: Settings, name: str) -> Partitioned:
    own = settings.model_copy(update={"partitions": 4, "consumer": name})
    return Partitioned(
        redis=own_redis(own), settings=own, stream=own.streams.key("s"), process=never
    )


def own_redis(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url)


async def test_a_joining_replica_takes_its_share_as_soon_as_it_is_given_back(
    settings: Settings, redis: Redis
) -> None:
    a, b = replica(settings, "a"), replica(settings, "b")
    try:
        assert await a.renew() is False  # alone: every partition, nothing to wait for
        assert a.held == {0, 1, 2, 3}
        assert await b.renew() is True  # short of its share: it looks again soon
        assert b.held == set()
        await a.renew()  # sees two replicas: gives two partitions back
        assert len(a.held) == 2
        assert await b.renew() is False  # takes them at its next look
        assert b.held == {0, 1, 2, 3} - a.held
    finally:
        for r in (a, b):
            await r.leave()
            await r.redis.aclose()


async def test_pending_and_lag_per_partition(redis: Redis, settings: Settings) -> None:
    own = settings.model_copy(update={"partitions": 4})
    part = Partitioned(redis=redis, settings=own, stream=own.streams.key("gauged"), process=never)
    seconds, _ = await redis.time()
    old = (int(seconds) - 120) * 1000  # written two minutes ago
    for i in range(3):
        await xadd(redis, part.parts[1], {"n": str(i)}, id=f"{old + i}-0")
    await xadd(redis, part.stream, {"subject": "acct-a"})
    await xadd(redis, part.stream, {"subject": "acct-b"})
    await xadd(redis, part.dlq, {"n": "dead"})

    await part.observe()
    s = part.stream
    assert gauge("alluse_partition_pending", stream=s, partition="1") == 3
    assert gauge("alluse_partition_pending", stream=s, partition="0") == 0
    assert 120 <= (gauge("alluse_partition_lag_seconds", stream=s, partition="1") or 0) < 3600
    assert gauge("alluse_partition_lag_seconds", stream=s, partition="0") == 0
    assert gauge("alluse_stream_lag", stream=s) == 2  # written, not yet routed
    assert gauge("alluse_stream_pending", stream=s) == 3  # routed, not yet applied
    assert gauge("alluse_dlq_entries", stream=s) == 1

    await part.renew()  # the router lease, and the partitions
    assert part.routing
    assert await part.route_once()
    await part.observe()
    assert gauge("alluse_stream_lag", stream=s) == 0
    assert gauge("alluse_stream_pending", stream=s) == 5
    by_part = [gauge("alluse_partition_pending", stream=s, partition=str(p)) for p in range(4)]
    assert sum(n or 0 for n in by_part) == 5
    await part.leave()
