"""No event lost to a Redis crash: with durability required, the relay deletes an outbox row
only once Redis has made its event durable (WAITAOF), on a Valkey server of the test's own
(never a CONFIG SET on a shared server)."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest

from shared.contracts.envelope import new_event
from shared.infra.runtime.db import connection, migrate
from shared.infra.runtime.service import Runtime, open_runtime
from shared.infra.runtime.settings import Settings
from shared.tooling.embedded import embedded_redis
from tests.support.streams import entries
from tests.support.waiting import until

STREAM = "durable.events"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Valkey 9.1 server with AOF off, that this test alone may reconfigure."""
    with embedded_redis(tmp_path / "valkey", appendonly=False) as url:
        yield url


async def relay_runtime(settings: Settings, url: str, mode: str) -> Runtime:
    schema = f"dur_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, Path(__file__).parent / "toy_migrations")
    own = settings.model_copy(update={"redis_url": url, "redis_durability": mode})
    return await open_runtime(own, schema=schema)


@pytest.fixture
async def required(settings: Settings, own_redis: str) -> AsyncIterator[Runtime]:
    rt = await relay_runtime(settings, own_redis, "required")
    yield rt
    await rt.pool.close()
    await rt.redis.aclose()


async def commit_events(pool: asyncpg.Pool, n: int, tag: str = "ev") -> list[str]:
    ids = [f"{tag}-{i}" for i in range(n)]
    await pool.executemany(
        "INSERT INTO outbox (stream, fields) VALUES ($1, $2::jsonb)",
        [
            (STREAM, orjson.dumps(new_event("toy.done", "toy", {}, event_id=i)).decode())
            for i in ids
        ],
    )
    return ids


async def test_required_durability_keeps_rows_until_aof_is_on_then_publishes_them_once(
    required: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    rt, redis = required, required.redis
    ids = await commit_events(rt.pool, 3)
    with caplog.at_level(logging.INFO, logger="shared.infra.stream.durability"):
        assert await rt.relay.publish_once() == 0
        assert await rt.relay.publish_once() == 0
        ready = await rt.ready()
    assert await rt.pool.fetchval("SELECT count(*) FROM outbox") == 3  # kept
    assert await redis.exists(STREAM) == 0  # and nothing published that Redis could lose
    assert "AOF off" in ready["redis_durability"]
    # The log says why, once, however often the relay and /readyz look again.
    (why,) = [r for r in caplog.records if r.name == "shared.infra.stream.durability"]
    assert why.levelno == logging.WARNING and "AOF off" in why.getMessage()
    await redis.config_set("appendonly", "yes")
    await until(rt.relay.publish_once, equals=3)
    assert await rt.pool.fetchval("SELECT count(*) FROM outbox") == 0
    published = [f[b"id"].decode() for _, f in await entries(redis, STREAM)]
    assert published == ids  # each once, in commit order
    assert (await rt.ready())["redis_durability"] == "ok"


async def test_auto_durability_publishes_at_once_on_a_server_without_aof(
    settings: Settings, own_redis: str
) -> None:
    rt = await relay_runtime(settings, own_redis, "auto")
    try:
        await commit_events(rt.pool, 2)
        assert await rt.relay.publish_once() == 2
        assert rt.relay.durability.method is None  # nothing to wait for: no AOF to confirm
        assert (await rt.ready())["redis_durability"] == "ok"
    finally:
        await rt.pool.close()
        await rt.redis.aclose()


async def test_with_aof_on_each_batch_is_confirmed_by_waitaof(
    settings: Settings, tmp_path: Path
) -> None:
    with embedded_redis(tmp_path / "aof") as url:
        rt = await relay_runtime(settings, url, "auto")
        try:
            await commit_events(rt.pool, 5)
            assert await rt.relay.publish_once() == 5
            assert rt.relay.durability.method == "waitaof"
            assert (await rt.redis.info("persistence"))["aof_enabled"] == 1
        finally:
            await rt.pool.close()
            await rt.redis.aclose()


async def test_rows_committed_while_a_round_awaits_waitaof_go_out_in_the_next_round(
    settings: Settings, tmp_path: Path
) -> None:
    with embedded_redis(tmp_path / "aof") as url:
        rt = await relay_runtime(settings, url, "auto")
        try:
            assert await rt.relay.durability.ready(rt.redis)
            first = await commit_events(rt.pool, 3)
            async with connection(rt.pool) as lead:
                assert await rt.relay.send(lead) == 3  # published; its WAITAOF awaited aside
                second = await commit_events(rt.pool, 2, tag="late")
                # Only the new rows, whether the first round is confirmed yet or not.
                assert await rt.relay.send(lead) == 2
                await asyncio.wait(rt.relay.confirming)
            published = [f[b"id"].decode() for _, f in await entries(rt.redis, STREAM)]
            assert published == first + second  # each once, in commit order
            assert await rt.pool.fetchval("SELECT count(*) FROM outbox") == 0
            assert rt.relay.published == 5
        finally:
            await rt.pool.close()
            await rt.redis.aclose()


async def test_the_running_relay_pipelines_its_rounds_and_settles_them_when_stopped(
    settings: Settings, tmp_path: Path
) -> None:
    with embedded_redis(tmp_path / "aof") as url:
        rt = await relay_runtime(settings, url, "auto")
        task = asyncio.create_task(rt.relay.run())
        try:
            ids = []
            for batch in range(3):
                ids += await commit_events(rt.pool, 4, tag=f"b{batch}")
                rt.relay.wake.set()
            await until(lambda: rt.pool.fetchval("SELECT count(*) FROM outbox"), equals=0)
            assert rt.relay.durability.method == "waitaof"
            published = [f[b"id"].decode() for _, f in await entries(rt.redis, STREAM)]
            assert published == ids  # each once, in commit order
        finally:
            rt.relay.stopped = True
            rt.relay.wake.set()
            await task
            assert not rt.relay.confirming and not rt.relay.in_flight
            await rt.pool.close()
            await rt.redis.aclose()


async def test_a_commit_in_another_process_wakes_the_relay_without_its_polling(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock holder is woken by the commit's notification (migration 004): with its own
    look-again interval set to an hour, rows committed on another connection, as by another
    replica, and never announced in this process, still go out."""
    from shared.infra.stream import outbox

    monkeypatch.setattr(outbox, "LISTENING_IDLE_SECONDS", 3600.0)
    with embedded_redis(tmp_path / "aof") as url:
        rt = await relay_runtime(settings, url, "auto")
        task = asyncio.create_task(rt.relay.run())
        try:
            first = await commit_events(rt.pool, 2, tag="first")
            await until(lambda: rt.pool.fetchval("SELECT count(*) FROM outbox"), equals=0)
            other = await asyncpg.connect(settings.database_url)  # not the relay's pool
            try:
                await other.execute(f"SET search_path TO {rt.relay.name}")
                await other.execute(
                    "INSERT INTO outbox (stream, fields) VALUES ($1, $2)",
                    STREAM,
                    orjson.dumps(new_event("toy.done", "toy", {}, event_id="later")).decode(),
                )
            finally:
                await other.close()
            await until(lambda: rt.pool.fetchval("SELECT count(*) FROM outbox"), equals=0)
            published = [f[b"id"].decode() for _, f in await entries(rt.redis, STREAM)]
            assert published == [*first, "later"]
        finally:
            rt.relay.stopped = True
            rt.relay.wake.set()
            await task
            await rt.pool.close()
            await rt.redis.aclose()
