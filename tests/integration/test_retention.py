"""Retention on real Redis and PostgreSQL: applied entries deleted, streams trimmed by age but
never past what a platform consumer group still needs, old inbox rows pruned in batches."""

import uuid
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis

from services.integration.app import build as build_integration
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    ACCOUNT_QUERIES,
    WS2_EVENTS,
    WS4_EVENTS,
)
from shared.infra.runtime.db import create_pool, migrate
from shared.infra.runtime.settings import Settings
from shared.infra.stream.retention import Retained, prune_inbox, trim
from tests.support.account import Client, rejection
from tests.support.streams import entries, xadd
from tests.support.waiting import until


async def test_commands_and_queries_are_deleted_once_their_outcome_is_committed(
    client: Client, redis: Redis
) -> None:
    gen = (await client.initialize())["generation"]
    await client.command("alluse.account.deposit", {"amount": "5.00"}, subject=gen["id"])
    rejection(
        await client.command("alluse.account.deposit", {"amount": "-5.00"}, subject=gen["id"])
    )
    await client.query("alluse.query.account", {"account_id": gen["id"]})
    await xadd(redis, client.s.key(ACCOUNT_COMMANDS), {"not": "a cloudevent"})  # dead-lettered
    queries = client.s.key(ACCOUNT_QUERIES)
    await until(lambda: redis.xlen(queries), equals=0)
    assert (await redis.xpending(queries, "account-service"))["pending"] == 0
    commands = client.s.key(ACCOUNT_COMMANDS)  # moved to its partitions, deleted once applied

    async def left() -> int:
        parts = [
            k async for k in redis.scan_iter(match=client.s.beside(commands, ".p*"), _type="stream")
        ]
        return sum([await redis.xlen(k) for k in [commands, *parts]])

    await until(left, equals=0)
    assert await redis.xlen(client.s.dlq(ACCOUNT_COMMANDS)) == 1  # the copy, token redacted


async def test_trim_by_age_keeps_what_a_platform_group_has_not_acknowledged(
    redis: Redis, settings: Settings
) -> None:
    stream = settings.streams.key("retained")
    ids = [await xadd(redis, stream, {"n": str(i)}, id=f"{i + 1}-0") for i in range(10)]
    await redis.xgroup_create(stream, "platform", id="0")
    await redis.xgroup_create(stream, "elsewhere", id="0")  # not the platform's: not waited for
    await redis.xreadgroup("platform", "c1", {stream: ">"}, count=6)  # six delivered
    await redis.xack(stream, "platform", *ids[:3])  # three acknowledged, three pending
    kept = Retained(stream, timedelta(0), frozenset({"platform"}))
    assert await trim(redis, kept) == 3
    assert [i for i, _ in await entries(redis, stream)] == ids[3:]
    await redis.xack(stream, "platform", *ids[3:6])
    assert await trim(redis, kept) == 3  # every acknowledged one; the undelivered stay
    assert [i for i, _ in await entries(redis, stream)] == ids[6:]
    fresh = await xadd(redis, stream, {"n": "now"})
    assert await trim(redis, Retained(stream, timedelta(days=1))) == 4  # no group: age alone
    assert [i for i, _ in await entries(redis, stream)] == [fresh]


async def test_streams_without_platform_group_are_trimmed_by_age_alone(
    redis: Redis, settings: Settings
) -> None:
    stream = settings.streams.key("lifecycle-like")
    for i in range(5):
        await xadd(redis, stream, {"n": str(i)}, id=f"{i + 1}-0")  # long ago
    assert await trim(redis, Retained(stream, timedelta(0))) == 5
    assert await trim(redis, Retained(settings.streams.key("absent"), timedelta(0))) == 0


async def test_inbox_rows_older_than_the_window_are_pruned_in_batches(settings: Settings) -> None:
    schema = f"ret_{uuid.uuid4().hex[:8]}"
    await migrate(settings.database_url, schema, Path(__file__).parent / "toy_migrations")
    pool = await create_pool(settings.database_url, schema)
    try:
        await pool.execute(
            "INSERT INTO inbox (source, id, type, fingerprint, outcome, applied_at)"
            " SELECT 's', 'old-' || n, 't', 'f', '[]'::jsonb, now() - interval '8 days'"
            " FROM generate_series(1, 25) n UNION ALL"
            " SELECT 's', 'new-' || n, 't', 'f', '[]'::jsonb, now() - interval '6 days'"
            " FROM generate_series(1, 4) n"
        )
        assert await prune_inbox(pool, timedelta(days=7), batch=10) == 25
        left = await pool.fetch("SELECT id FROM inbox ORDER BY id")
        assert [r["id"] for r in left] == [f"new-{n}" for n in range(1, 5)]
    finally:
        await pool.close()


async def test_integration_service_trims_lifecycle_upstream_account_events_and_dlqs(
    settings: Settings, redis: Redis
) -> None:
    rt = await build_integration(settings)
    try:
        kept = {k.stream: (k.age, k.groups) for k in rt.janitor().retained}
        s = settings.streams
        assert kept[s.key(ACCOUNT_LIFECYCLE)] == (settings.lifecycle_retention, frozenset())
        assert kept[s.key(WS2_EVENTS)] == (settings.upstream_retention, frozenset({"integration"}))
        assert kept[s.key(WS4_EVENTS)] == (settings.upstream_retention, frozenset({"integration"}))
        for name in (WS2_EVENTS, WS4_EVENTS, ACCOUNT_EVENTS):
            assert kept[s.dlq(name)] == (settings.dlq_retention, frozenset())
        assert kept[s.key(ACCOUNT_EVENTS)] == (
            settings.account_events_retention,
            frozenset({"integration"}),
        )  # read by operators' tools for outcomes: trimmed by age, not deleted on republishing
        assert not any(c.delete_applied for c in rt.consumers)
    finally:
        await rt.pool.close()
        await rt.redis.aclose()
