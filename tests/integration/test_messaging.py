"""The delivery guarantees of the shared pipeline, on a toy service over real Redis and PostgreSQL."""

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from shared.contracts.answers import ENTRY_REFUSED
from shared.contracts.envelope import CloudEvent, new_event
from shared.infra.runtime.db import create_pool, migrate
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.lanes import LaneOutcomes
from shared.infra.stream.messaging import Emit, Handler, Rejected
from shared.infra.stream.outbox import Relay
from shared.infra.stream.pipeline import Pipeline, Unit
from shared.infra.stream.unit import SqlUnit
from shared.infra.trust.keys import KeySet, KeysUnavailable
from shared.infra.trust.signing import EntrySigner, new_seed, signer_of, text_fields
from tests.support.streams import decoded, entries, read_group, xadd
from tests.support.waiting import until

EVENTS = "toy.events"


async def add(unit: SqlUnit, ev: CloudEvent) -> list[Emit]:
    if ev.data.get("boom"):
        raise RuntimeError("a bug in the handler")
    n = Decimal(ev.data["n"])
    value = await unit.db.fetchval(
        "INSERT INTO counter VALUES ('c', $1) ON CONFLICT (name)"
        " DO UPDATE SET value = counter.value + $1 RETURNING value",
        n,
    )
    if value < 0:  # refused after it wrote: the unit of work undoes the write
        raise Rejected("negative", "the counter must not go below zero")
    return [(EVENTS, new_event("toy.added", "toy", {"value": str(value)}, cause=ev))]


@pytest.fixture
async def toy(
    settings: Settings, redis: Redis
) -> AsyncIterator[tuple[StreamConsumer, Relay, asyncpg.Pool]]:
    schema = f"toy_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, Path(__file__).parent / "toy_migrations")
    pool = await create_pool(settings.database_url, schema)
    events = settings.streams.key(EVENTS)
    pipeline = Pipeline(pool, _prefixed(add, events), source="toy", reject_stream=events)
    relay = Relay(pool, redis, name=schema, sign=list)  # signing is tested with the services
    consumer = StreamConsumer(
        redis=redis,
        settings=settings,
        stream=settings.streams.key("toy.commands"),
        group="toy",
        process=pipeline.process,
    )
    await consumer.ensure_group()
    yield consumer, relay, pool
    await pool.close()


def _prefixed(handler: Handler, events: str) -> Handler:
    async def wrapped(unit: Unit, ev: CloudEvent) -> list[Emit]:
        return [(events, f) for _, f in await handler(unit, ev)]

    return wrapped


def command(n: str, *, cid: str | None = None, **extra: object) -> dict[str, str]:
    return new_event("toy.add", "tests", {"n": n, **extra}, event_id=cid)


async def drain(redis: Redis, consumer: StreamConsumer) -> None:
    """Read what is new on the command stream as the service would, and apply it."""
    got = await read_group(redis, consumer.group, "svc-1", consumer.stream, count=100)
    if got:
        await consumer.handle(got)


async def published(redis: Redis, settings: Settings) -> list[dict[str, str]]:
    found = await entries(redis, settings.streams.key(EVENTS))
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in found]


async def test_same_entry_twice_applies_once_and_answers_twice(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, relay, pool = toy
    cmd = command("10.00", cid="c-1")
    await xadd(redis, consumer.stream, cmd)
    await xadd(redis, consumer.stream, cmd)
    await drain(redis, consumer)
    await relay.publish_once()
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("10.00")
    events = await published(redis, settings)
    assert [e["type"] for e in events] == ["toy.added", "toy.added"]
    assert events[0]["id"] == events[1]["id"]  # the same outcome, with the same event id
    assert await redis.xpending(consumer.stream, consumer.group) == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }


async def test_same_id_other_payload_is_an_idempotency_conflict(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, relay, pool = toy
    await xadd(redis, consumer.stream, command("10.00", cid="c-2"))
    await drain(redis, consumer)
    await xadd(redis, consumer.stream, command("99.00", cid="c-2"))
    await drain(redis, consumer)
    await relay.publish_once()
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("10.00")
    events = await published(redis, settings)
    assert events[1]["type"] == "alluse.command.rejected"
    assert json.loads(events[1]["data"])["code"] == "idempotency_conflict"
    assert events[1]["causationid"] == "c-2"


async def test_rejection_changes_nothing_and_names_its_cause(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, relay, pool = toy
    await xadd(redis, consumer.stream, command("-1.00", cid="c-3"))
    await drain(redis, consumer)
    await relay.publish_once()
    assert await pool.fetchval("SELECT count(*) FROM counter") == 0
    (event,) = await published(redis, settings)
    assert json.loads(event["data"]) == {
        "code": "negative",
        "reason": "the counter must not go below zero",
        "command_type": "toy.add",
        "command_id": "c-3",
    }


async def test_command_rejected_after_it_wrote_leaves_nothing_and_its_batch_commits(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool],
    redis: Redis,
    settings: Settings,
) -> None:
    consumer, relay, pool = toy
    for n, cid in (("5.00", "b-1"), ("-100.00", "b-2"), ("2.00", "b-3")):
        await xadd(redis, consumer.stream, command(n, cid=cid))
    await drain(redis, consumer)  # one read, one batch, one transaction
    await relay.publish_once()
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("7.00")
    events = await published(redis, settings)
    assert [e["type"] for e in events] == ["toy.added", "alluse.command.rejected", "toy.added"]
    assert [json.loads(e["data"]).get("value") for e in events] == ["5.00", None, "7.00"]
    assert (await redis.xpending(consumer.stream, consumer.group))["pending"] == 0


async def test_unparseable_entry_goes_to_dlq_with_reason(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, _relay, pool = toy
    await xadd(redis, consumer.stream, {"hello": "world"})
    await xadd(redis, consumer.stream, {**command("1.00"), "data": "{not json"})
    await xadd(redis, consumer.stream, command("2.00"))
    await drain(redis, consumer)
    dead = await entries(redis, consumer.dlq)
    assert len(dead) == 2
    assert b"missing field 'data'" in dead[0][1][b"dlq_reason"]
    assert b"not JSON" in dead[1][1][b"dlq_reason"]
    assert dead[0][1][b"hello"] == b"world"  # the original fields are kept for re-driving
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("2.00")
    assert (await redis.xpending(consumer.stream, consumer.group))["pending"] == 0


async def test_dead_letter_copy_never_holds_a_bearer_token(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, _relay, _pool = toy
    await xadd(
        redis,
        consumer.stream,
        {**command("1.00"), "data": "[1]", "authorization": "Bearer secret.jwt.value"},
    )
    await drain(redis, consumer)
    ((_, dead),) = await entries(redis, consumer.dlq)
    assert dead[b"authorization"] == b"[redacted]"
    assert b"must be a JSON object" in dead[b"dlq_reason"]


async def test_crash_after_commit_before_publish_loses_nothing(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, relay, pool = toy
    await xadd(redis, consumer.stream, command("5.00", cid="c-5"))
    await drain(redis, consumer)  # committed; the "process" dies before the relay runs
    assert await published(redis, settings) == []
    fresh = Relay(pool, redis, name="another-process", sign=list)
    fresh.lock_key = relay.lock_key
    assert await fresh.publish_once() == 1
    assert [e["type"] for e in await published(redis, settings)] == ["toy.added"]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_dead_consumers_entries_are_reclaimed_and_applied(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, _relay, pool = toy
    await xadd(redis, consumer.stream, command("7.00", cid="c-6"))
    # A consumer reads the entry and dies before acknowledging it (crash before ack).
    await redis.xreadgroup(consumer.group, "dead-consumer", {consumer.stream: ">"}, count=10)
    # Reclaimed as soon as it has been idle long enough: ask until the reclaimer takes it.
    assert await until(consumer.reclaim_once, equals=1) == 1
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("7.00")
    assert (await redis.xpending(consumer.stream, consumer.group))["pending"] == 0


async def test_entry_failing_every_delivery_is_dead_lettered_and_others_proceed(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool],
    redis: Redis,
    settings: Settings,
) -> None:
    consumer, _relay, pool = toy
    await xadd(redis, consumer.stream, command("1.00", boom=True))
    await xadd(redis, consumer.stream, command("3.00"))
    await drain(redis, consumer)
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("3.00")

    # Each reclaim that finds it idle delivers it once more; the last one dead-letters it.
    async def dead_lettered() -> int:
        await consumer.reclaim_once()
        return int(await redis.xlen(consumer.dlq))

    assert await until(dead_lettered, equals=1) == 1
    dead = await entries(redis, consumer.dlq)
    reason = dead[0][1][b"dlq_reason"]
    assert reason == b"failed 3 deliveries; last error: RuntimeError: a bug in the handler"
    assert (await redis.xpending(consumer.stream, consumer.group))["pending"] == 0


async def test_a_lane_entry_failing_every_delivery_is_refused_on_its_lane_once_and_signed(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, _relay, pool = toy
    events = settings.streams.key(EVENTS)
    lane_outcomes = LaneOutcomes(settings.streams, "toy.commands")
    pipeline = Pipeline(
        pool, _prefixed(add, events), source="toy", reject_stream=events, outcomes=lane_outcomes
    )
    consumer.process = pipeline.process
    consumer.signer = signer = EntrySigner.from_seed("toy", new_seed())
    cmd = {**command("1.00", boom=True), "lane": "l1"}  # as the router leaves it
    await xadd(redis, consumer.stream, cmd)
    await drain(redis, consumer)

    async def dead_lettered() -> int:
        await consumer.reclaim_once()
        return int(await redis.xlen(consumer.dlq))

    assert await until(dead_lettered, equals=1) == 1
    found = await entries(redis, settings.streams.outcomes("l1"))
    assert len(found) == 1  # its one outcome, written with its dead letter
    raw = found[0][1]
    outcome = decoded(raw)
    assert outcome["type"] == ENTRY_REFUSED
    assert outcome["data"]["code"] == "dead_lettered"
    assert outcome["data"]["reason"].startswith("failed 3 deliveries; last error: RuntimeError")
    ref = {k: outcome["data"][k] for k in ("stream", "type", "source", "id")}
    assert ref == {"stream": "toy.commands", "type": "toy.add", "source": "tests", "id": cmd["id"]}
    assert outcome["causationid"] == cmd["id"]

    async def jwks() -> dict[str, Any]:
        return {"keys": [signer.jwk()]}

    assert await signer_of(KeySet(jwks), text_fields(raw)) == "toy"


async def test_a_held_entry_is_handed_back_to_its_group_uncounted_and_applied_later(
    toy: tuple[StreamConsumer, Relay, asyncpg.Pool], redis: Redis, settings: Settings
) -> None:
    consumer, _relay, pool = toy
    events = settings.streams.key(EVENTS)
    keys = {"away": True}

    async def guard(ev: CloudEvent, fields: dict[bytes, bytes]) -> None:
        if keys["away"]:
            raise KeysUnavailable("the JWKS cannot be fetched")
        ev.verified_as("tests", "platform")

    pipeline = Pipeline(
        pool, _prefixed(add, events), source="toy", reject_stream=events, guard=guard
    )
    consumer.process = pipeline.process
    await xadd(redis, consumer.stream, command("4.00", cid="h-1"))
    await drain(redis, consumer)

    async def deliveries() -> list[int]:
        found = await redis.xpending_range(consumer.stream, consumer.group, "-", "+", 10)
        return [int(p["times_delivered"]) for p in found]

    assert await deliveries() == [0]  # held: handed back, its delivery not counted
    for _ in range(settings.max_deliveries + 1):  # more passes than deliveries allowed
        assert await until(consumer.reclaim_once, equals=1) == 1
        assert await deliveries() == [0]
    assert await redis.xlen(consumer.dlq) == 0
    keys["away"] = False
    assert await until(consumer.reclaim_once, equals=1) == 1
    assert await pool.fetchval("SELECT value FROM counter") == Decimal("4.00")
    assert await deliveries() == []
