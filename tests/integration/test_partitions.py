"""Ordered consumption on real Redis: partitions shared out when a replica joins, a read of the
partitions woken by what is written there (by a router, or straight into a partition), and
the gauges (per partition, entries waiting and the age of the oldest; for the public stream,
entries not yet routed and routed but not yet applied)."""

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection

from services.account.app import build as build_account
from services.integration.direct import NotWritten, write_placed
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EVENTS
from shared.infra.runtime.settings import Settings
from shared.infra.stream.durability import Durability
from shared.infra.stream.messaging import Entry, Outcome
from shared.infra.stream.partitions import Partitioned, Placement
from shared.infra.stream.settle import HELD_SECONDS
from tests.support.streams import ce, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until


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


async def test_an_entry_held_for_the_keys_waits_at_its_partitions_head_then_is_applied(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    """While the JWKS is down a command is held: its partition is not read again before the
    retry delay (counted in process() calls, on a clock the test drives), it is never
    dead-lettered for waiting, and it is applied once the keys are back."""
    signer = Signer(tmp_path / "jwks.json")
    own = settings.model_copy(
        update={"jwks_url": signer.jwks_url, "signing_key": signer.seed("account")}
    )
    rt = await build_account(own)
    commands = rt.ordered[0]
    now = [1_000.0]
    commands.clock = rt.keys.clock = lambda: now[0]  # the keys' once-a-second look-up too
    seen: list[Outcome] = []
    process = commands.process

    async def counted(entries: Sequence[Entry]) -> Outcome:
        seen.append(await process(entries))
        return seen[-1]

    commands.process = counted
    try:
        signer.down = True
        cmd = ce("alluse.account.create", {"type": "revenue"}, authorization=signer.bearer())
        await xadd(redis, own.streams.key(ACCOUNT_COMMANDS), cmd)
        await commands.renew()
        assert await commands.route_once()
        assert await commands.consume_once()  # the barrier: read, and held
        assert len(seen) == 1 and seen[0].held and not seen[0].ack
        for _ in range(3):  # before its retry delay: its partition is not read
            now[0] += HELD_SECONDS / 4
            assert await commands.consume_once() is False
        assert len(seen) == 1
        now[0] += HELD_SECONDS  # past it: read again, held again (the keys are still away)
        assert await commands.consume_once()
        assert len(seen) == 2 and seen[1].held
        for _ in range(own.max_deliveries + 1):  # waiting is no failed delivery
            now[0] += HELD_SECONDS
            assert await commands.consume_once()
        assert await redis.xlen(commands.dlq) == 0
        signer.down = False
        now[0] += HELD_SECONDS
        assert await commands.consume_once()
        assert len(seen[-1].ack) == 1 and not seen[-1].held  # applied
        await rt.relay.publish_once()
        (created,) = await outcomes(redis, own.streams.key(ACCOUNT_EVENTS), cmd["id"])
        assert created["type"] == "alluse.account.created"
        assert await redis.xlen(commands.dlq) == 0
    finally:
        await commands.leave()
        await rt.pool.close()
        await rt.redis.aclose()
        signer.close()


async def test_after_a_batch_that_emptied_its_read_the_next_read_waits_on_the_partitions(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No read that can only find nothing: after a batch, the next read of the partitions is a
    blocking one, woken by the entry the router moves there (it waits long enough, and
    renewals are far enough apart, that its timeout would not end it first)."""
    own = settings.model_copy(
        update={"partitions": 4, "block_ms": 2000, "partition_lease_ms": 60_000}
    )
    steps: list[str | int] = []  # each read's start (waiting or not) and how many it took
    applied: list[bytes] = []

    async def process(entries: Sequence[Entry]) -> Outcome:
        applied.extend(f[b"subject"] for _, f in entries)
        return Outcome(ack=[i for i, _ in entries])

    part = Partitioned(redis=redis, settings=own, stream=own.streams.key("paced"), process=process)
    read = part.consume_once

    async def counted(wait: float = 0.0) -> bool:
        steps.append("waits" if wait > 0 else "looks")
        before = len(applied)
        worked = await read(wait)
        steps.append(len(applied) - before)
        return worked

    async def routing() -> bool:
        return part.routing

    async def after_the_read() -> list[str | int]:
        return steps[steps.index(1) + 1 :] if 1 in steps else []

    async def done() -> list[bytes]:
        return applied

    monkeypatch.setattr(part, "consume_once", counted)
    task = asyncio.create_task(part.run())
    try:
        await until(routing, what="the router lease")
        await xadd(redis, part.stream, {"subject": "acct-a"})
        following = await until(after_the_read, what="the read after the batch")
        assert following == ["waits"]  # a blocking read, under way
        await xadd(redis, part.stream, {"subject": "acct-b"})
        await until(done, equals=[b"acct-a", b"acct-b"])
        # The read under way when it was written took it: woken, not timed out and read again.
        assert steps[steps.index(1) + 1 : steps.index(1) + 3] == ["waits", 1]
    finally:
        part.stopped = True
        await task


async def test_a_direct_write_is_applied_by_the_replica_holding_its_partition(
    redis: Redis, settings: Settings
) -> None:
    """An entry written straight into a partition (as the integration service writes its
    effects), by no router: the replica holding that partition, which does not route, is
    woken by it and applies it; so is the router's holder for its own partitions."""
    own = settings.model_copy(update={"partitions": 4, "partition_lease_ms": 3_000})
    applied: dict[str, list[bytes]] = {"a": [], "b": []}

    def replica_of(name: str) -> Partitioned:
        async def process(entries: Sequence[Entry]) -> Outcome:
            applied[name].extend(f[b"subject"] for _, f in entries)
            return Outcome(ack=[i for i, _ in entries])

        mine = own.model_copy(update={"consumer": name})
        stream = own.streams.key("direct")
        return Partitioned(redis=own_redis(mine), settings=mine, stream=stream, process=process)

    a, b = replica_of("a"), replica_of("b")
    ta = asyncio.create_task(a.run())

    async def routing() -> bool:
        return a.routing

    await until(routing, what="the router lease")
    tb = asyncio.create_task(b.run())

    async def shared() -> bool:
        return len(a.held) == 2 and len(b.held) == 2

    try:
        await until(shared, what="the partitions shared out")
        subjects: dict[int, bytes] = {}  # an account in each partition
        for n in range(100):
            subject = f"acct-{n}".encode()
            subjects.setdefault(a.placement.partition({b"subject": subject}), subject)
        durability = Durability(mode="off")
        signed = [{"subject": subjects[p].decode(), "n": str(p)} for p in sorted(subjects)]
        assert await write_placed(redis, durability, a.placement, signed)
        assert await redis.xlen(a.stream) == 0  # not written to the public stream
        want = {name: sorted(subjects[p] for p in r.held) for name, r in (("a", a), ("b", b))}

        async def by_replica() -> dict[str, list[bytes]]:
            return {name: sorted(got) for name, got in applied.items()}

        await until(by_replica, equals=want)
        assert [await redis.xlen(p) for p in a.parts] == [0] * 4  # applied, then deleted
    finally:
        a.stopped = b.stopped = True
        await asyncio.gather(ta, tb)
        await a.redis.aclose()
        await b.redis.aclose()


async def test_the_wait_for_an_entry_ends_when_a_held_partitions_retry_falls_due(
    settings: Settings,
) -> None:
    part = replica(settings, "r1")
    part.clock = lambda: 100.0
    part.held = {0, 1}
    assert part.pause() == settings.block_ms / 1000
    part.retry_at = {1: 100.004, 2: 100.001}  # partition 2 is another replica's
    assert part.pause() == pytest.approx(0.004)
    part.retry_at = {1: 99.0}  # fell due since the last read (which clears what it honours)
    assert part.pause() == 0.0


async def test_a_router_that_finds_its_lease_taken_stops_routing(
    redis: Redis, settings: Settings
) -> None:
    """Renewals far apart: only the move's own fence can tell the replica that the lease went
    to another, and then it stops routing until a renewal gets the lease back."""
    own = settings.model_copy(update={"partitions": 4, "partition_lease_ms": 60_000})
    part = Partitioned(redis=redis, settings=own, stream=own.streams.key("fenced"), process=never)
    task = asyncio.create_task(part.run())

    async def routing() -> bool:
        return part.routing

    try:
        await until(routing, what="the router lease")
        await redis.set(part.router_key, "replica-b", px=60_000)  # taken over meanwhile
        await xadd(redis, part.stream, {"subject": "acct-a"})
        await until(routing, equals=False, what="the fence noticed")
        assert len(await entries(redis, part.stream)) == 1  # not moved by this replica
    finally:
        part.stopped = True
        await task


class Noted(Connection):
    """A connection that notes the name of every command it sends."""

    sent: ClassVar[list[str]] = []

    def pack_command(
        self, *args: bytes | bytearray | memoryview | str | int | float
    ) -> list[bytes]:
        name = args[0]
        self.sent.append(name.decode() if isinstance(name, bytes) else str(name))
        return super().pack_command(*args)


async def test_a_batch_is_read_from_every_held_partition_in_one_command(
    settings: Settings, redis: Redis
) -> None:
    """One XREAD of the held partitions, whose reply names only those with entries; not a
    command per partition, most of them empty at a paced load."""
    own = settings.model_copy(update={"partitions": 8, "consumer": "reader"})
    seen: list[tuple[list[bytes], dict[bytes, int]]] = []

    async def applied(entries: Sequence[Entry]) -> Outcome:
        seen.append(([i for i, _ in entries], dict(part.where)))
        out = Outcome()
        out.ack.extend(i for i, _ in entries)
        return out

    noted = Redis(connection_pool=ConnectionPool.from_url(own.redis_url, connection_class=Noted))
    part = Partitioned(redis=noted, settings=own, stream=own.streams.key("read"), process=applied)
    try:
        await part.renew()
        assert part.held == set(range(8))
        # Ids from one sequence across the partitions, as the router gives them.
        written = {
            await xadd(redis, part.parts[p], {"n": str(n)}, id=f"{n + 1}-0"): p
            for p, n in ((2, 0), (5, 1), (2, 2))
        }
        Noted.sent.clear()
        assert await part.consume_once()
        assert Noted.sent[0] == "XREAD" and "XRANGE" not in Noted.sent, Noted.sent
        ((ids, where),) = seen
        assert sorted(ids) == sorted(written) and where == written
        assert [await redis.xlen(p) for p in part.parts] == [0] * 8  # applied, then deleted
    finally:
        await part.leave()
        await noted.aclose()


async def test_a_direct_write_stops_at_the_first_entry_redis_refuses_and_says_so(
    redis: Redis, settings: Settings
) -> None:
    """Nothing after a refused entry is written (it would overtake it once the writer's
    fallback sends the batch again), and the writer hears how far it got."""
    own = settings.model_copy(update={"partitions": 4})
    placement = Placement.of(own.streams, own.streams.key("refusing"), 4)
    by_part: dict[int, str] = {}
    for n in range(100):
        by_part.setdefault(placement.partition({b"subject": f"acct-{n}".encode()}), f"acct-{n}")
    await redis.set(placement.count_key, 4)  # as the account service's router says
    await redis.set(placement.parts[2], "not a stream")
    signed = [{"subject": by_part[p]} for p in (1, 2, 3)]
    with pytest.raises(NotWritten, match="1 of 3 written; then: WRONGTYPE"):
        await write_placed(redis, Durability(mode="off"), placement, signed)
    assert [len(await entries(redis, placement.parts[p])) for p in (1, 3)] == [1, 0]
    assert await redis.xlen(placement.stream) == 0


async def test_a_direct_writer_that_counts_partitions_otherwise_writes_to_the_public_stream(
    redis: Redis, settings: Settings
) -> None:
    """Until the readers have said how many partitions they read, and while they say another
    number than the writer's (ALLUSE_PARTITIONS set apart), every entry goes to the public
    stream, for the router to place as the readers count: none lands in a partition that no
    reader reads."""
    key = settings.streams.key("counted")
    writer = Placement.of(settings.streams, key, 8)
    durability = Durability(mode="off")
    signed = [{"subject": f"acct-{n}"} for n in range(20)]
    assert not await write_placed(redis, durability, writer, signed)  # no reader has said
    await redis.set(writer.count_key, 4)  # the readers read 4
    assert not await write_placed(redis, durability, writer, signed)
    assert await redis.xlen(key) == 40
    assert [await redis.xlen(p) for p in writer.parts] == [0] * 8
    await redis.delete(key)
    await redis.set(writer.count_key, 8)
    assert await write_placed(redis, durability, writer, signed)
    assert sum([await redis.xlen(p) for p in writer.parts]) == 20
    assert await redis.xlen(key) == 0


async def test_the_router_says_how_many_partitions_it_reads(
    redis: Redis, settings: Settings
) -> None:
    own = settings.model_copy(update={"partitions": 4})
    part = Partitioned(redis=redis, settings=own, stream=own.streams.key("saying"), process=never)
    await part.renew()
    assert part.routing
    assert await redis.get(part.placement.count_key) == b"4"
    await part.leave()


async def test_a_replica_that_does_not_route_is_woken_by_a_direct_write(
    redis: Redis, settings: Settings
) -> None:
    """Its reads may wait 8 s (`block_ms`), its renewals are minutes apart, and no router of
    its own tells it of a move: only a read woken by the write itself applies the entries
    before the barrier gives up (5 s). (Stopping it takes up to `block_ms`: its router's
    wait.)"""
    own = settings.model_copy(
        update={"partitions": 4, "partition_lease_ms": 600_000, "block_ms": 8_000}
    )
    applied: list[bytes] = []

    async def process(entries: Sequence[Entry]) -> Outcome:
        applied.extend(f[b"subject"] for _, f in entries)
        return Outcome(ack=[i for i, _ in entries])

    part = Partitioned(
        redis=own_redis(own), settings=own, stream=own.streams.key("woken"), process=process
    )
    await redis.set(part.router_key, "elsewhere", px=600_000)  # another replica routes
    await redis.set(part.placement.count_key, 4)  # as that router says
    task = asyncio.create_task(part.run())

    async def holding() -> int:
        return len(part.held)

    try:
        await until(holding, equals=4, what="every partition held")
        assert not part.routing
        signed = [{"subject": f"acct-{n}"} for n in range(8)]
        assert await write_placed(redis, Durability(mode="off"), part.placement, signed)

        async def got() -> list[bytes]:
            return sorted(applied)

        await until(got, equals=sorted(f["subject"].encode() for f in signed), timeout=5)
    finally:
        part.stopped = True
        await task
        await part.leave()
        await part.redis.aclose()
