"""One client's flood delays another's query by no more than one batch (issue 18, "one
client, one lane"): the account service's query router shares each batch in turns across the
lanes, keeps at most one batch in the shared queries stream, and holds a machine client's
queries beyond its rate in that client's own lane. Plain redis-py writers, lanes required;
every check counts what a barrier (an outcome) proves, never time."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import build
from shared.contracts.answers import ENTRY_APPLIED, ENTRY_REFUSED
from shared.contracts.streams import ACCOUNT_QUERIES
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from shared.infra.stream.lanes import WAITING_BURSTS
from tests.support.streams import ce, decoded
from tests.support.tokens import Signer
from tests.support.waiting import until

BATCH = 8
FLOODER, OTHER = "engine-a", "engine-b"


def lane_query(s: Settings, signer: Signer, lane: str, type_: str) -> dict[str, str]:
    box = s.streams.replies(lane) + uuid.uuid4().hex
    return ce(type_, {}, authorization=signer.bearer("trading_engine", sub=lane), replyto=box)


async def flood(redis: Redis, s: Settings, entries: list[dict[str, str]], lane: str) -> None:
    pipe = redis.pipeline(transaction=False)
    for fields in entries:
        pipe.xadd(s.streams.lane(ACCOUNT_QUERIES, lane), fields)  # type: ignore[arg-type]
    await pipe.execute()


async def outcomes(redis: Redis, s: Settings, lane: str) -> list[tuple[int, dict[str, Any]]]:
    """The lane's outcomes, oldest first, each with the millisecond Redis wrote it."""
    got: Any = await redis.xrange(s.streams.outcomes(lane))
    return [(int(i.split(b"-")[0]), decoded(f)) for i, f in got]


async def answered(redis: Redis, s: Settings, lane: str, n: int) -> list[tuple[int, Any]]:
    async def probe() -> list[tuple[int, Any]]:
        return await outcomes(redis, s, lane)

    return await until(probe, lambda found: len(found) >= n, timeout=60, what=f"{lane}'s outcomes")


@pytest.fixture
async def lanes(settings: Settings, redis: Redis) -> AsyncIterator[Settings]:
    s = settings.model_copy(update={"lanes": "required", "batch_size": BATCH})
    await redis.sadd(s.streams.lanes, FLOODER, OTHER)
    yield s


async def test_a_flood_of_5000_queries_delays_another_clients_query_by_at_most_a_batch(
    lanes: Settings, redis: Redis, signer: Signer
) -> None:
    """Rate limits off: the flood is answered as fast as the service can. Once it flows, the
    other client's query is answered with at most the batch then in hand and its own batch
    of the flood's answers written between its sending and its answer (before the router
    shared batches, everything already moved out of the flooder's lane came first)."""
    s = lanes.model_copy(update={"rate_queries_per_second": 0})
    flooded = [lane_query(s, signer, FLOODER, "alluse.query.accounts") for _ in range(5000)]
    async with running(await build(s)):
        await flood(redis, s, flooded, FLOODER)
        await answered(redis, s, FLOODER, 1)  # the barrier: the flood is flowing
        query = lane_query(s, signer, OTHER, "alluse.query.accounts")
        sent = int((await redis.xadd(s.streams.lane(ACCOUNT_QUERIES, OTHER), query)).split(b"-")[0])  # type: ignore[arg-type]
        ((at, outcome),) = await answered(redis, s, OTHER, 1)
        assert outcome["type"] == ENTRY_APPLIED and outcome["data"]["id"] == query["id"]
        between = [ms for ms, _ in await outcomes(redis, s, FLOODER) if sent <= ms <= at]
        left = await redis.xlen(s.streams.lane(ACCOUNT_QUERIES, FLOODER))
    assert len(between) <= 2 * BATCH, len(between)
    assert left > 0  # the rest of the flood still waited in its own lane


async def test_a_clients_queries_beyond_its_rate_wait_in_its_own_lane(
    lanes: Settings, redis: Redis, signer: Signer
) -> None:
    """Burst 20, nothing refills while the test runs: 20 of the flood's 100 queries leave its
    lane and are answered, none is refused; 80 wait in the lane; the other client's query is
    answered meanwhile."""
    s = lanes.model_copy(update={"rate_queries_per_second": 0.001, "rate_queries_burst": 20})
    flooded = [lane_query(s, signer, FLOODER, "alluse.query.accounts") for _ in range(100)]
    async with running(await build(s)):
        await flood(redis, s, flooded, FLOODER)
        got = await answered(redis, s, FLOODER, 20)
        query = lane_query(s, signer, OTHER, "alluse.query.accounts")
        await redis.xadd(s.streams.lane(ACCOUNT_QUERIES, OTHER), query)  # type: ignore[arg-type]
        ((_, outcome),) = await answered(redis, s, OTHER, 1)  # a barrier for the router too
        assert outcome["type"] == ENTRY_APPLIED, outcome
        got = await outcomes(redis, s, FLOODER)
        left = await redis.xlen(s.streams.lane(ACCOUNT_QUERIES, FLOODER))
    assert [e["type"] for _, e in got] == [ENTRY_APPLIED] * 20
    assert {e["data"]["id"] for _, e in got} == {f["id"] for f in flooded[:20]}  # the oldest
    assert left == 80


async def test_a_flood_beyond_its_lanes_cap_is_refused_rate_limited_and_the_lane_stays_bounded(
    lanes: Settings, redis: Redis, signer: Signer
) -> None:
    """Burst 20, nothing refills: the lane keeps at most WAITING_BURSTS bursts (80) waiting.
    Of a flood of 200, the oldest 20 are answered, the next 100 are moved anyway and refused
    `rate_limited` on the client's outcome lane, and 80 wait."""
    s = lanes.model_copy(update={"rate_queries_per_second": 0.001, "rate_queries_burst": 20})
    cap = WAITING_BURSTS * 20
    flooded = [lane_query(s, signer, FLOODER, "alluse.query.accounts") for _ in range(200)]
    async with running(await build(s)):
        await flood(redis, s, flooded, FLOODER)
        await answered(redis, s, FLOODER, 200 - cap)
        query = lane_query(s, signer, OTHER, "alluse.query.accounts")
        await redis.xadd(s.streams.lane(ACCOUNT_QUERIES, OTHER), query)  # type: ignore[arg-type]
        ((_, outcome),) = await answered(redis, s, OTHER, 1)  # a barrier for the router too
        assert outcome["type"] == ENTRY_APPLIED, outcome
        got = [e for _, e in await outcomes(redis, s, FLOODER)]
        left = await redis.xlen(s.streams.lane(ACCOUNT_QUERIES, FLOODER))
    applied = {e["data"]["id"] for e in got if e["type"] == ENTRY_APPLIED}
    refused = [e["data"] for e in got if e["type"] == ENTRY_REFUSED]
    assert applied == {f["id"] for f in flooded[:20]}  # the oldest, within its burst
    assert [r["code"] for r in refused] == ["rate_limited"] * 100, refused[:3]
    assert {r["id"] for r in refused} == {f["id"] for f in flooded[20:120]}
    assert left == cap


async def test_a_query_that_waited_longer_than_the_reply_ttl_is_refused_rate_limited(
    lanes: Settings, redis: Redis, signer: Signer
) -> None:
    """Burst 20, nothing refills, 30 queries whose ids say they were written in 1970 (a lane's
    writer picks its ids): all have waited longer than the reply TTL, so none stays in the
    lane; 20 are answered and 10 refused `rate_limited`."""
    s = lanes.model_copy(update={"rate_queries_per_second": 0.001, "rate_queries_burst": 20})
    flooded = [lane_query(s, signer, FLOODER, "alluse.query.accounts") for _ in range(30)]
    async with running(await build(s)):
        key = s.streams.lane(ACCOUNT_QUERIES, FLOODER)
        for n, fields in enumerate(flooded, start=1):
            await redis.xadd(key, fields, id=f"1000-{n}")  # type: ignore[arg-type]
        got = [e for _, e in await answered(redis, s, FLOODER, 30)]
        left = await redis.xlen(key)
    assert [e["type"] for e in got].count(ENTRY_APPLIED) == 20, got[:3]
    refused = [e["data"]["code"] for e in got if e["type"] == ENTRY_REFUSED]
    assert refused == ["rate_limited"] * 10
    assert left == 0
