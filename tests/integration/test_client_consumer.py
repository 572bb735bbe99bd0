"""The client library's consumer group on a real server (Redis 7.0, and Valkey): nothing lost or
doubled when a member dies with entries pending, forged entries refused, outcomes judged.

A "dead" member is simulated exactly as a kill -9 leaves it: entries read (XREADGROUP) and
never acknowledged.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from alluse_client import (
    Consumer,
    Event,
    KeySet,
    SchemaError,
    SchemaSet,
    SqliteStore,
    binary_fields,
)
from alluse_client.consumer import Invalid
from alluse_client.engine import Engine, NoOutcome
from alluse_client.faststream import LifecycleSubscription
from alluse_client.payloads import MarketQuote, WeekClassified
from alluse_client.tokens import StaticToken
from shared.infra.runtime.settings import Settings
from shared.infra.trust.signing import EntrySigner, new_seed
from shared.tooling import embedded
from tests.support.acl import acl_redis, passwords
from tests.support.streams import Entry, entries, xadd
from tests.support.waiting import until

INTEGRATION = EntrySigner.from_seed("integration", new_seed())
ACCOUNT = EntrySigner.from_seed("account", new_seed())
KEYS = {"keys": [INTEGRATION.jwk(), ACCOUNT.jwk()]}


def closed(n: int) -> dict[str, str]:
    return binary_fields(
        "alluse.account.closed",
        "alluse/account-service",
        {"account_id": f"a-{n}", "reason": "test"},
        id=f"ev-{n}",
    )


@pytest.fixture(params=["redis", "valkey"])
async def server(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[Redis]:
    with contextlib.ExitStack() as stack:
        url = settings.redis_url
        if request.param == "valkey":
            url = stack.enter_context(embedded.embedded_redis(tmp_path / "valkey"))
        client = Redis.from_url(url)
        yield client
        await client.delete(settings.stream_prefix + "life")
        await client.aclose()


class Recorder:
    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.fail_on = fail_on or set()

    async def __call__(self, event: Event) -> None:
        if event.id in self.fail_on:
            self.fail_on.discard(event.id)  # fails once, then succeeds
            raise RuntimeError("handler failed")
        assert event.signer == "integration"
        self.seen.append(event.key)


async def drain(consumer: Consumer, handler: Any, total: int) -> None:
    """Steps until the group has nothing pending and the last entry was delivered: a barrier,
    not a timer."""
    for _ in range(500):
        await consumer.step(handler)
        info = {g["name"].decode(): g for g in await consumer.redis.xinfo_groups(consumer.stream)}
        group = info[consumer.group]
        if (
            group["pending"] == 0
            and consumer.stats.handled + consumer.stats.duplicates + consumer.stats.invalid >= total
        ):
            return
    raise AssertionError(f"not drained: {consumer.stats}")


async def test_a_dead_members_entries_are_taken_over_and_none_doubles(
    server: Redis, settings: Settings, tmp_path: Path
) -> None:
    stream = settings.stream_prefix + "life"
    signed = INTEGRATION.sign_many([closed(n) for n in range(20)])
    for fields in signed[:10]:  # written before the group exists: read too (group at 0)
        await xadd(server, stream, fields)
    store = SqliteStore(tmp_path / "seen.db")
    common: dict[str, Any] = dict(
        redis=server,
        stream=stream,
        group="g",
        keys=KeySet.of(KEYS),
        store=store,
        schemas=SchemaSet.bundled(),
        block_ms=50,
    )
    first = Consumer(name="a", **common)
    await first.ensure_group()
    for fields in signed[10:]:
        await xadd(server, stream, fields)
    # Member "a" reads 5 and dies (kill -9: read, never acknowledged); member "dead" reads 5
    # and never comes back.
    await server.xreadgroup("g", "a", {stream: ">"}, count=5)
    await server.xreadgroup("g", "dead", {stream: ">"}, count=5)
    # A copy of an entry (a producer's retry) and a forged one join the stream.
    await xadd(server, stream, signed[2])
    forged = {**signed[3], "data": '{"account_id":"a-3","reason":"forged"}'}
    await xadd(server, stream, forged)
    invalid: list[str] = []

    async def on_invalid(entry_id: str, fields: Any, why: Invalid) -> None:
        invalid.append(str(why))

    handler = Recorder(fail_on={"ev-12"})
    restarted = Consumer(name="a", claim_idle_ms=0, on_invalid=on_invalid, retry_delay=0, **common)
    await restarted.step(handler)  # own pending first: the five "a" had read
    assert handler.seen == [("alluse/account-service", f"ev-{n}") for n in range(5)]
    await drain(restarted, handler, 22)
    assert sorted(handler.seen) == sorted(("alluse/account-service", f"ev-{n}") for n in range(20))
    assert len(handler.seen) == 20  # the copy of ev-2 was not handled twice
    assert restarted.stats.duplicates == 1 and restarted.stats.claimed >= 5
    assert invalid == ["signature: signature does not match the entry"]
    # A third member started later finds nothing left to do (the sqlite store remembers).
    later = Consumer(name="c", **common)
    assert not await later.step(handler)
    store.close()


async def test_a_failing_handler_keeps_the_order(server: Redis, settings: Settings) -> None:
    stream = settings.stream_prefix + "life"
    for fields in INTEGRATION.sign_many([closed(n) for n in range(6)]):
        await xadd(server, stream, fields)
    handler = Recorder(fail_on={"ev-2"})
    consumer = Consumer(server, stream, "g", "a", KeySet.of(KEYS), block_ms=50, retry_delay=0)
    await consumer.ensure_group()
    await drain(consumer, handler, 6)
    assert [k[1] for k in handler.seen] == [f"ev-{n}" for n in range(6)]


async def test_entries_of_another_signer_or_against_their_schema_are_refused(
    server: Redis, settings: Settings
) -> None:
    stream = settings.stream_prefix + "life"
    bad_schema = binary_fields(
        "alluse.account.closed",
        "alluse/account-service",
        {"account_id": 5, "reason": "x"},
        id="bad",
    )
    await xadd(server, stream, ACCOUNT.sign(closed(1)))
    await xadd(server, stream, INTEGRATION.sign(bad_schema))
    reasons: list[str] = []

    async def on_invalid(entry_id: str, fields: Any, why: Invalid) -> None:
        reasons.append(str(why))

    consumer = Consumer(
        server,
        stream,
        "g",
        "a",
        KeySet.of(KEYS),
        schemas=SchemaSet.bundled(),
        on_invalid=on_invalid,
        block_ms=50,
    )
    await consumer.ensure_group()
    handler = Recorder()
    await drain(consumer, handler, 2)
    assert handler.seen == []
    assert reasons[0] == "signed by the account service, not the integration service"
    assert reasons[1].startswith("schema of alluse.account.closed: account_id")


async def test_outcomes_in_a_lane_are_believed_only_from_the_deciding_service(
    server: Redis, settings: Settings
) -> None:
    prefix = settings.stream_prefix
    token = "e30.eyJzdWIiOiJlbmcifQ.sig"  # {"sub": "eng"}
    engine = Engine(
        server,
        StaticToken(token),
        source="ws2/eng",
        keys=KeySet.of(KEYS),
        prefix=prefix,
        lane="eng",
    )
    week: WeekClassified = {"week_start": "2026-11-23", "week_type": "P-EW", "confidence": "0.9"}
    checked = Engine(
        server,
        StaticToken(token),
        source="ws2/eng",
        keys=None,
        prefix=prefix,
        lane="eng",
        schemas=SchemaSet.bundled("upstream"),
    )
    with pytest.raises(SchemaError, match="week_type"):  # refused here, nothing sent
        await checked.week_classified({**week, "week_type": "P-XX"})  # type: ignore[typeddict-item]
    sent = await engine.week_classified(week)
    assert sent.key == f"{prefix}{{{prefix}ws2.protocol.events}}.lane.eng"
    fields = await entries(server, sent.key)
    assert fields[0][1][b"authorization"] == f"Bearer {token}".encode()
    outcomes = f"{prefix}alluse.outcomes.eng"

    def outcome(type_: str, **data: Any) -> dict[str, str]:
        about = {
            "stream": "ws2.protocol.events",
            "type": sent.type,
            "source": sent.source,
            "id": sent.id,
            **data,
        }
        return binary_fields(type_, "alluse/integration", about, causationid=sent.id)

    # Written by the wrong service, then unsigned: neither is believed; then the real one.
    await xadd(server, outcomes, ACCOUNT.sign(outcome("alluse.entry.applied", events=[])))
    await xadd(server, outcomes, outcome("alluse.entry.applied", events=[]))
    with pytest.raises(NoOutcome):
        await engine.outcome(sent, timeout=0.5)
    again = await engine.publish("ws2.week.classified", week)
    assert again.id == sent.id  # the same week again: the same id
    refused = outcome("alluse.entry.refused", code="invalid_payload", reason="no", dataschema="x")
    await xadd(server, outcomes, INTEGRATION.sign(refused))
    got = await engine.outcome(again, timeout=10)
    assert (got.status, got.code, got.signer) == ("refused", "invalid_payload", "integration")
    # The same entry sent twice more gets one outcome each, in order: applied, then duplicate.
    first, second = [await engine.week_classified(week) for _ in range(2)]
    await xadd(server, outcomes, INTEGRATION.sign(outcome("alluse.entry.applied", events=[])))
    dup = outcome("alluse.entry.duplicate", of={"source": sent.source, "id": sent.id}, events=[])
    await xadd(server, outcomes, INTEGRATION.sign(dup))
    assert [o.status async for o in engine.outcomes([first], timeout=10)] == ["applied"]
    assert (await engine.outcome(second, timeout=10)).status == "duplicate"
    await server.delete(sent.key, outcomes)


async def test_faststream_subscription_reads_old_entries_and_claims_a_dead_members(
    server: Redis, settings: Settings
) -> None:
    from faststream.redis import RedisBroker

    stream = settings.stream_prefix + "life"
    signed = INTEGRATION.sign_many([closed(n) for n in range(8)])
    for fields in signed[:4]:
        await xadd(server, stream, fields)
    url = server.get_connection_kwargs()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    broker = RedisBroker(f"redis://{url['host']}:{url['port']}/0")
    sub = LifecycleSubscription(
        stream=stream,
        group="fs",
        consumer="fs-1",
        keys=KeySet.of(KEYS),
        schemas=SchemaSet.bundled(),
        claim_idle_ms=200,
        polling_ms=20,
    )
    seen: list[str] = []
    done = asyncio.Event()

    @sub.subscribe(broker)
    async def handle(event: Event) -> None:
        seen.append(event.id)
        if len(set(seen)) == 8:
            done.set()

    async with broker:
        await sub.prepare()  # as the app's startup hook does: the group at 0
        await server.xreadgroup("fs", "dead", {stream: ">"}, count=2)  # died holding ev-0, ev-1
        await broker.start()
        for fields in signed[4:]:
            await xadd(server, stream, fields)
        await xadd(server, stream, signed[5])  # a copy
        await asyncio.wait_for(done.wait(), 30)
        # The copy was written before the last original was seen: wait until it is delivered.

        async def delivered() -> bool:
            groups = {g["name"]: g for g in await server.xinfo_groups(stream)}
            newest = cast(list[Entry], await server.xrevrange(stream, count=1))[0][0]
            fs = groups[b"fs"]
            return bool(fs["pending"] == 0 and fs["last-delivered-id"] == newest)

        await until(delivered, what="every entry delivered to the group and acknowledged")
    assert sorted(seen) == sorted(f"ev-{n}" for n in range(8))


async def test_the_library_works_with_the_redis_users_the_platform_gives_its_clients(
    tmp_path: Path,
) -> None:
    """The `lifecycle` ACL user runs the whole consumer recipe; the `engine` user publishes and,
    without read access to any outcome stream, is told so instead of waiting."""
    prefix = f"acl{uuid.uuid4().hex[:6]}."
    with acl_redis(tmp_path / "acl", prefix, passwords()) as urls:
        writer = Redis.from_url(urls["integration"])
        stream = prefix + "alluse.account.lifecycle"
        for fields in INTEGRATION.sign_many([closed(n) for n in range(4)]):
            await xadd(writer, stream, fields)
        reader = Redis.from_url(urls["lifecycle"])
        consumer = Consumer(
            reader,
            stream,
            "acl",
            "a",
            KeySet.of(KEYS),
            claim_idle_ms=0,
            schemas=SchemaSet.bundled(),
            block_ms=50,
        )
        await consumer.ensure_group()
        await reader.xreadgroup("acl", "dead", {stream: ">"}, count=2)
        handler = Recorder()
        for _ in range(20):
            await consumer.step(handler)
            if len(handler.seen) == 4:
                break
        assert sorted(k[1] for k in handler.seen) == [f"ev-{n}" for n in range(4)]
        assert consumer.stats.claimed == 2

        clients = [writer, reader]
        # Before lanes, every engine shares the `engine` user, which may only XADD; with lanes
        # each client has its own user (client-<lane>), tested with the lanes.
        if "engine" in urls:
            engine_redis = Redis.from_url(urls["engine"])
            clients.append(engine_redis)
            engine = Engine(
                engine_redis,
                StaticToken("e30.eyJzdWIiOiJlbmcifQ.sig"),
                source="ws4/eng",
                keys=KeySet.of(KEYS),
                prefix=prefix,
            )
            quote: MarketQuote = {
                "symbol": "NVDA",
                "bid": "1.00",
                "ask": "1.10",
                "last": "1.05",
                "as_of": "2026-11-26T15:00:00Z",
            }
            sent = await engine.market_quote(quote)
            assert (await writer.xlen(prefix + "ws4.market.events")) == 1
            with pytest.raises(NoOutcome, match="cannot read"):
                await engine.outcome(sent, timeout=5)
        for client in clients:
            await client.aclose()
