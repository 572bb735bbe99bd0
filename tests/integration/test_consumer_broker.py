"""A consumer group read by the service's own broker (as `running` starts it), on real Redis:
each batch reaches the consumer as its entries, on the event loop, acknowledged by the
consumer alone (manual acknowledgement)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio.to_thread
import pytest
from redis.asyncio import Redis

from shared.infra.runtime.service import open_runtime
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.messaging import Entry, Outcome
from tests.support.streams import entries, xadd


async def test_a_batch_is_handed_over_as_its_entries_on_the_loop_and_acknowledged_manually(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[Callable[..., Any]] = []  # functions FastStream ran in a worker thread
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    stream = settings.streams.key("toy.batches")
    applied = await xadd(redis, stream, {"n": "1"})
    failing = await xadd(redis, stream, {"n": "2"})
    batches: list[list[Entry]] = []

    async def process(entries: Sequence[Entry]) -> Outcome:
        batches.append(list(entries))
        return Outcome(ack=[applied], failed={failing: "boom"})

    handled = asyncio.Event()
    consumer = StreamConsumer(
        redis=redis,
        settings=settings,
        stream=stream,
        group="toy",
        process=process,
        delete_applied=True,
    )
    settle = consumer.settle

    async def settled(entry_ids: Sequence[bytes]) -> None:
        await settle(entry_ids)
        handled.set()  # the batch settled

    consumer.settle = settled  # type: ignore[method-assign]
    await consumer.ensure_group()  # before the entries' ids are read: it starts at 0
    await read_by_the_broker(settings, consumer, handled.wait())
    assert batches == [[(applied, {b"n": b"1"}), (failing, {b"n": b"2"})]]
    assert hops == []  # nothing per batch in a worker thread
    # Acknowledged (and deleted) only what the consumer settled; the failed entry stays
    # pending for the reclaimer, as FastStream never acknowledges on its own.
    assert [e for e, _ in await entries(redis, stream)] == [failing]
    pending = await redis.xpending_range(stream, "toy", min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == [failing]


async def read_by_the_broker(
    settings: Settings, consumer: StreamConsumer, done: Awaitable[object]
) -> None:
    """`consumer` read by a service's own broker until `done`; the broker stopped after,
    which waits for the batch in hand: its handling has ended when this returns."""
    rt = await open_runtime(settings, schema=f"toy_{uuid.uuid4().hex[:8]}")
    consumer.register(rt.broker)
    await rt.broker.start()
    try:
        await wait(done)
    finally:
        await rt.broker.stop()
        await rt.pool.close()
        await rt.redis.aclose()


async def wait(done: Awaitable[object]) -> None:
    async with asyncio.timeout(10):
        await done


async def test_a_batch_whose_handling_raises_stays_pending_whole(
    settings: Settings, redis: Redis
) -> None:
    stream = settings.streams.key("toy.raising")
    ids = [await xadd(redis, stream, {"n": str(n)}) for n in range(3)]
    called = asyncio.Event()

    async def process(entries: Sequence[Entry]) -> Outcome:
        called.set()
        raise RuntimeError("the database went away")

    consumer = StreamConsumer(
        redis=redis, settings=settings, stream=stream, group="toy", process=process
    )
    await consumer.ensure_group()
    await read_by_the_broker(settings, consumer, called.wait())
    # Nothing acknowledged or deleted: every entry waits for the reclaimer, counted once.
    assert [e for e, _ in await entries(redis, stream)] == ids
    pending = await redis.xpending_range(stream, "toy", min="-", max="+", count=10)
    assert [(p["message_id"], p["times_delivered"]) for p in pending] == [(i, 1) for i in ids]


async def test_the_relay_is_woken_only_after_a_batch_that_left_it_outbox_rows(
    settings: Settings, redis: Redis
) -> None:
    """`after` is the relay's wake-up: a batch forwarded or republished straight to Redis
    (no outbox row) would only make it read an empty outbox."""
    stream = settings.streams.key("toy.wake")
    straight, through = [await xadd(redis, stream, {"n": str(n)}) for n in range(2)]
    outcomes = {
        straight: Outcome(ack=[straight], emitted=1),
        through: Outcome(ack=[through], emitted=2, outboxed=2),
    }

    async def process(entries: Sequence[Entry]) -> Outcome:
        return outcomes[entries[0][0]]

    woken: list[bytes] = []
    consumer = StreamConsumer(
        redis=redis, settings=settings, stream=stream, group="toy", process=process
    )
    consumer.after = lambda: woken.append(b"relay")
    await consumer.ensure_group()
    await consumer.handle_batch([(straight, {b"n": b"0"})], {})
    assert woken == []
    await consumer.handle_batch([(through, {b"n": b"1"})], {})
    assert woken == [b"relay"]
