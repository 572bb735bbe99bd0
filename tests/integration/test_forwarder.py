"""The integration service forwards fills, assignments and expirations straight to the account
service: the effect is written and the entry acknowledged within the batch's own handling (no
inbox or outbox row, no relay round), and the account service applies it once and answers on
the engine's lane. A redelivered entry is forwarded again as the same effect and booked once;
whatever the pipeline would refuse still goes through it, with its refusal, lane outcome and
audit record; while Redis cannot confirm durability, every effect waits in the outbox (but a
lapsed redelivery, which the pipeline would refuse, waits pending)."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from services.account.app import build as build_account
from services.integration import forwarder
from services.integration.app import build as build_integration
from shared.contracts.answers import ENTRY_APPLIED, ENTRY_DUPLICATE, ENTRY_REFUSED
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    AUDIT,
    OPERATOR_LANE,
    WS2_EVENTS,
    WS4_EVENTS,
)
from shared.contracts.trust import ACCOUNT, INTEGRATION
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.messaging import Entry
from shared.infra.stream.partitions import Partitioned
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of, text_fields
from tests.conftest import as_service
from tests.integration.test_integration_service import fill
from tests.integration.test_lanes import of, until_found
from tests.support.streams import ce, decoded, entries, outcomes, read_group, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

LANE = "engine-a"


@dataclass
class Forwarding:
    """The account service running; the integration service's WS4 consumer driven by hand, so
    a test decides when a batch is handled and whether it is acknowledged."""

    redis: Redis
    settings: Settings
    signer: Signer
    keys: KeySet
    integration: Runtime
    account_id: str
    account: Runtime

    @property
    def effects(self) -> Partitioned:
        """The account service's ordered consumption of the effects stream."""
        key = self.settings.streams.key(ACCOUNT_EFFECTS)
        (found,) = [o for o in self.account.ordered if o.stream == key]
        return found

    async def routed_elsewhere(self) -> None:
        """The router lease taken by a replica that never routes: an effect on the public
        stream stays there; one written into its partition is applied all the same."""
        await self.redis.set(self.effects.router_key, "elsewhere", px=60_000)

    async def routed_again(self) -> None:
        await self.redis.delete(self.effects.router_key)  # taken at the next renewal

    @property
    def consumer(self) -> StreamConsumer:
        (found,) = [c for c in self.integration.consumers if c.stream.endswith(WS4_EVENTS)]
        return found

    async def send(self, fields: dict[str, str], lane: str = LANE) -> dict[str, str]:
        """As the router moves it from the engine's lane (field `lane`)."""
        await xadd(self.redis, self.settings.streams.key(WS4_EVENTS), {**fields, "lane": lane})
        return fields

    async def read(self) -> Any:
        c = self.consumer
        return await read_group(self.redis, c.group, "svc-1", c.stream, count=50)

    async def outcome(self, sent: dict[str, str]) -> tuple[dict[str, Any], str]:
        """The one outcome of `sent` on the lane, and who signed it."""
        key = self.settings.streams.outcomes(LANE)
        ((ev, raw),) = await until_found(self.redis, key, sent["id"], 10)
        return ev, await signer_of(self.keys, text_fields(raw))

    async def again(self, sent: dict[str, str]) -> tuple[dict[str, Any], dict[bytes, bytes]]:
        """The second outcome of `sent` on the lane (a redelivery's), once there are two."""
        key = self.settings.streams.outcomes(LANE)

        async def count() -> int:
            return len(await of(self.redis, key, sent["id"]))

        await until(count, equals=2)
        return (await of(self.redis, key, sent["id"]))[1]

    def fill(self, **overrides: Any) -> dict[str, str]:
        token = overrides.pop("authorization", None)
        engine = token or self.signer.bearer("trading_engine", sub=LANE)
        data = fill(self.account_id, **overrides)
        return ce("ws4.trade.filled", data, source=f"ws4/{LANE}", authorization=engine)

    async def outbox(self) -> int:
        count: int = await self.integration.pool.fetchval("SELECT count(*) FROM outbox")
        return count


@pytest.fixture
async def fwd(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Forwarding]:
    required = settings.model_copy(update={"lanes": "required"})
    account = await build_account(required)
    integration = await build_integration(
        as_service(required, signer, "integration"),
        schema=f"integration_{uuid.uuid4().hex[:8]}",
    )
    for consumer in integration.consumers:
        await consumer.ensure_group()
    await redis.sadd(required.streams.lanes, LANE)
    try:
        async with running(account):
            init = ce(
                "alluse.system.initialize",
                {"total_capital": "250000.00"},
                authorization=signer.bearer("admin"),
            )
            await xadd(redis, required.streams.lane(ACCOUNT_COMMANDS, OPERATOR_LANE), init)
            events = await outcomes(redis, required.streams.key(ACCOUNT_EVENTS), init["id"], want=4)
            made = next(e for e in events if e["type"] == "alluse.system.initialized")
            accounts = {a["type"]: a for a in made["data"]["accounts"]}
            keys = KeySet.from_url(signer.jwks_url)
            yield Forwarding(
                redis, required, signer, keys, integration, accounts["generation"]["id"], account
            )
    finally:
        await integration.pool.close()
        await integration.redis.aclose()


async def test_a_fill_forwarded_again_after_a_crash_before_its_ack_is_booked_once(
    fwd: Forwarding,
) -> None:
    sent = await fwd.send(fwd.fill())
    batch = await fwd.read()
    forwarded = await fwd.consumer.process(batch)  # then the service dies before acknowledging
    # Applied, though this service's relay never ran: written here, not through the outbox
    # (so the batch does not wake the relay: it left nothing for it).
    applied, signer = await fwd.outcome(sent)
    assert applied["type"] == ENTRY_APPLIED, applied
    assert signer == ACCOUNT
    assert await fwd.outbox() == 0
    assert (forwarded.emitted, forwarded.outboxed) == (1, 0)
    assert await fwd.integration.pool.fetchval("SELECT count(*) FROM inbox") == 0

    await fwd.consumer.handle(batch)  # redelivered after the restart: forwarded again, acked
    again, _ = await fwd.again(sent)
    assert again["type"] == ENTRY_DUPLICATE, again
    # The same effect again: another payload under its key would be `idempotency_conflict`.
    # Booked once: the duplicate's outcome, committed with whatever it caused, is the barrier.
    # Its events are the first application's again (same ids: readers drop the copy).
    events = await entries(fwd.redis, fwd.settings.streams.key(ACCOUNT_EVENTS))
    booked = [
        e
        for e in map(decoded, (f for _, f in events))
        if e["type"] == "alluse.account.balance_changed" and e.get("causationid") == sent["id"]
    ]
    assert len({e["id"] for e in booked}) == 1
    c = fwd.consumer
    assert (await fwd.redis.xpending(c.stream, c.group))["pending"] == 0


async def audited(fwd: Forwarding, cause_id: str) -> list[dict[str, Any]]:
    """The audit records caused by `cause_id`, alone or in a batch of a service's records
    (one entry for the batch of entries it applied together), once there is one."""

    async def found() -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for _, f in await entries(fwd.redis, fwd.settings.streams.key(AUDIT)):
            e = decoded(f)
            if e["type"] == "alluse.audit.batch":
                records += [r for r in e["data"]["records"] if r["causationid"] == cause_id]
            elif e.get("causationid") == cause_id:
                records.append(e["data"])
        return records

    return await until(found, what=f"the audit records of {cause_id}")


async def booked(fwd: Forwarding) -> list[str]:
    """The fills booked, by the id of the entry that caused each, in the order booked."""
    events = await entries(fwd.redis, fwd.settings.streams.key(ACCOUNT_EVENTS))
    changed = [decoded(f) for _, f in events]
    return [e["causationid"] for e in changed if e["type"] == "alluse.account.balance_changed"]


async def test_a_forwarded_fill_goes_straight_into_its_partition_and_is_booked_once(
    fwd: Forwarding,
) -> None:
    """Not through the public effects stream: no replica routes it (the router lease is held
    by one that never routes), yet the account service applies it, once."""
    await fwd.routed_elsewhere()
    try:
        sent = await fwd.send(fwd.fill())
        await fwd.consumer.handle(await fwd.read())
        applied, signer = await fwd.outcome(sent)  # the barrier: applied
        assert (applied["type"], signer) == (ENTRY_APPLIED, ACCOUNT), applied
        effects = fwd.effects
        assert await fwd.redis.xlen(effects.stream) == 0  # never on the public stream
        assert [await fwd.redis.xlen(p) for p in effects.parts] == [0] * len(effects.parts)
        assert await fwd.redis.get(effects.placement.sequence)  # its id from the one sequence
        assert await booked(fwd) == [sent["id"]]
        assert await fwd.outbox() == 0
    finally:
        await fwd.routed_again()


async def test_a_fill_goes_behind_an_effect_waiting_to_be_routed_and_both_apply_in_order(
    fwd: Forwarding, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the public effects stream holds an effect (here one relayed from the outbox),
    the next fill's effect is appended behind it there, not written into the partition
    ahead of it: the account books both, in the order they were filled."""

    async def unconfirmable(_: Redis) -> bool:
        return False

    await fwd.routed_elsewhere()
    try:
        monkeypatch.setattr(fwd.integration.relay.durability, "ready", unconfirmable)
        first = await fwd.send(fwd.fill())
        await fwd.consumer.handle(await fwd.read())  # kept in the outbox
        monkeypatch.undo()
        await fwd.integration.relay.publish_once()  # on the public stream: nothing routes it
        effects = fwd.effects
        assert await fwd.redis.xlen(effects.stream) == 1
        second = await fwd.send(fwd.fill())
        await fwd.consumer.handle(await fwd.read())  # the outbox is empty: forwarded here
        waiting = [decoded(f)["id"] for _, f in await entries(fwd.redis, effects.stream)]
        assert waiting == [first["id"], second["id"]]  # behind it
        await fwd.routed_again()
        for sent in (first, second):
            applied, _ = await fwd.outcome(sent)
            assert applied["type"] == ENTRY_APPLIED, applied
        assert await booked(fwd) == [first["id"], second["id"]]
    finally:
        await fwd.routed_again()


async def test_a_fill_sent_again_after_its_week_is_classified_is_a_duplicate(
    fwd: Forwarding,
) -> None:
    """Forwarded again, the fill is tagged with the week type in force then: its effect is
    still the same effect (the week type is the forwarder's annotation), booked once."""
    sent = await fwd.send(fwd.fill(filled_at="2026-11-26T14:02:11Z"))
    await fwd.consumer.handle(await fwd.read())
    first, _ = await fwd.outcome(sent)
    assert first["type"] == ENTRY_APPLIED, first

    week = {"week_start": "2026-11-23", "week_type": "P-EW", "confidence": "0.9"}
    classified = ce(
        "ws2.week.classified",
        week,
        source=f"ws2/{LANE}",
        authorization=fwd.signer.bearer("trading_engine", sub=LANE),
    )
    s = fwd.settings.streams
    await xadd(fwd.redis, s.key(WS2_EVENTS), {**classified, "lane": LANE})
    (ws2,) = [c for c in fwd.integration.consumers if c.stream.endswith(WS2_EVENTS)]
    await ws2.handle(await read_group(fwd.redis, ws2.group, "svc-1", ws2.stream, count=50))
    await fwd.integration.relay.publish_once()
    recorded, _ = await fwd.outcome(classified)
    assert recorded["type"] == ENTRY_APPLIED, recorded

    await fwd.send(sent)  # the very same entry again, now in a classified week
    await fwd.consumer.handle(await fwd.read())
    again, _ = await fwd.again(sent)
    assert again["type"] == ENTRY_DUPLICATE, again


async def test_a_fill_redelivered_after_its_token_expired_is_a_duplicate_never_refused(
    fwd: Forwarding,
) -> None:
    sent = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())
    applied, _ = await fwd.outcome(sent)
    assert applied["type"] == ENTRY_APPLIED, applied

    past = int(time.time()) - 3600
    expired = fwd.signer.bearer("trading_engine", sub=LANE, iat=past, nbf=past, exp=past + 900)
    forged_key = Ed25519PrivateKey.generate()  # a stranger's key under the platform's kid
    claims = fwd.signer.claims("trading_engine", sub=LANE)
    forged = jwt.encode(claims, forged_key, algorithm="EdDSA", headers={"kid": fwd.signer.kid})
    key = fwd.settings.streams.outcomes(LANE)

    async def count() -> int:
        return len(await of(fwd.redis, key, sent["id"]))

    await fwd.send({**sent, "authorization": expired})  # the token lapsed meanwhile
    await fwd.consumer.handle(await fwd.read())
    await until(count, equals=2)
    # Again, in a batch the pipeline takes (a quote's effect is its own): still straight.
    quote = {"symbol": "TSLA", "bid": "250.90", "ask": "251.10", "last": "251.00"}
    quote["as_of"] = "2026-11-26T15:00:00Z"
    engine = fwd.signer.bearer("trading_engine", sub=LANE)
    quoted = await fwd.send(
        ce("ws4.market.quote", quote, source=f"ws4/{LANE}", authorization=engine)
    )
    await fwd.send({**sent, "authorization": expired})
    await fwd.consumer.handle(await fwd.read())
    await fwd.integration.relay.publish_once()
    recorded, _ = await fwd.outcome(quoted)
    assert recorded["type"] == ENTRY_APPLIED, recorded
    await until(count, equals=3)
    await fwd.send({**sent, "authorization": f"Bearer {forged}"})
    await fwd.consumer.handle(await fwd.read())
    await fwd.integration.relay.publish_once()  # refused here: the pipeline's way
    await until(count, equals=4)
    # An expired token's fill the account service never applied: refused there, on the lane.
    new = await fwd.send(fwd.fill(authorization=expired))
    await fwd.consumer.handle(await fwd.read())
    refused_new, new_signer = await fwd.outcome(new)
    assert (refused_new["type"], refused_new["data"]["code"], new_signer) == (
        ENTRY_REFUSED,
        "unauthorized",
        ACCOUNT,
    ), refused_new
    assert refused_new["data"]["type"] == "ws4.trade.filled"

    _, (again, _), (third, _), (refused, raw) = await of(fwd.redis, key, sent["id"])
    for dup in (again, third):
        assert dup["type"] == ENTRY_DUPLICATE, dup
        assert dup["data"]["events"] == applied["data"]["events"]
    assert (refused["type"], refused["data"]["code"]) == (ENTRY_REFUSED, "unauthorized")
    assert await signer_of(fwd.keys, text_fields(raw)) == INTEGRATION
    events = await entries(fwd.redis, fwd.settings.streams.key(ACCOUNT_EVENTS))
    booked = {
        e["id"]
        for e in map(decoded, (f for _, f in events))
        if e["type"] == "alluse.account.balance_changed" and e.get("causationid") == sent["id"]
    }
    assert len(booked) == 1
    books = await outcomes(fwd.redis, fwd.settings.streams.key(ACCOUNT_EVENTS), new["id"], want=1)
    assert [e["type"] for e in books] == ["alluse.command.rejected"]


@pytest.mark.parametrize("failure", ["durability unconfirmable", "effect not written"])
async def test_a_lapsed_redelivery_that_cannot_go_straight_waits_and_is_never_refused(
    fwd: Forwarding, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The pipeline's inbox never saw a key forwarded here: it would refuse the redelivery
    of a fill that applied. So the lapsed entry stays pending until it can go straight."""
    sent = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())
    applied, _ = await fwd.outcome(sent)
    assert applied["type"] == ENTRY_APPLIED, applied

    if failure == "durability unconfirmable":

        async def unconfirmable(_: Redis) -> bool:
            return False

        monkeypatch.setattr(fwd.integration.relay.durability, "ready", unconfirmable)
    else:

        async def unwritable(*_: Any) -> None:
            raise ConnectionError("Redis went away")

        monkeypatch.setattr(forwarder, "write_placed", unwritable)
    past = int(time.time()) - 3600
    expired = fwd.signer.bearer("trading_engine", sub=LANE, iat=past, nbf=past, exp=past + 900)
    await fwd.send({**sent, "authorization": expired})
    fresh = await fwd.send(fwd.fill())  # beside it, a fill the pipeline takes
    await fwd.consumer.handle(await fwd.read())
    monkeypatch.undo()
    await fwd.integration.relay.publish_once()
    assert await fwd.outbox() == 0  # the barrier: whatever the pipeline decided is out
    ev, _ = await fwd.outcome(fresh)
    assert ev["type"] == ENTRY_APPLIED, ev
    key = fwd.settings.streams.outcomes(LANE)
    assert [ev["type"] for ev, _ in await of(fwd.redis, key, sent["id"])] == [ENTRY_APPLIED]
    c = fwd.consumer
    assert (await fwd.redis.xpending(c.stream, c.group))["pending"] == 1

    got = await fwd.redis.xreadgroup(c.group, "svc-1", {c.stream: "0"})  # delivered again
    ((_, pending),) = cast(list[tuple[bytes, list[Entry]]], got)
    await c.handle(pending, {entry_id: 2 for entry_id, _ in pending})

    again, raw = await fwd.again(sent)
    assert again["type"] == ENTRY_DUPLICATE, again
    assert again["data"]["events"] == applied["data"]["events"]
    assert await signer_of(fwd.keys, text_fields(raw)) == ACCOUNT
    assert (await fwd.redis.xpending(c.stream, c.group))["pending"] == 0


async def test_a_lapsed_redelivery_waiting_too_long_is_dead_lettered_without_a_refusal(
    fwd: Forwarding, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())
    applied, _ = await fwd.outcome(sent)
    assert applied["type"] == ENTRY_APPLIED, applied

    async def unconfirmable(_: Redis) -> bool:
        return False

    monkeypatch.setattr(fwd.integration.relay.durability, "ready", unconfirmable)
    past = int(time.time()) - 3600
    expired = fwd.signer.bearer("trading_engine", sub=LANE, iat=past, nbf=past, exp=past + 900)
    await fwd.send({**sent, "authorization": expired})
    c = fwd.consumer
    last = fwd.settings.max_deliveries
    await c.handle(batch := await fwd.read(), {entry_id: last for entry_id, _ in batch})
    monkeypatch.undo()
    (letter,) = [decoded(f) for _, f in await entries(fwd.redis, c.dlq)]
    assert letter["id"] == sent["id"]
    assert "Redis cannot confirm durability" in letter["dlq_reason"]
    await fwd.integration.relay.publish_once()
    assert await fwd.outbox() == 0  # the barrier: whatever this service decided is out
    key = fwd.settings.streams.outcomes(LANE)
    assert [ev["type"] for ev, _ in await of(fwd.redis, key, sent["id"])] == [ENTRY_APPLIED]
    assert (await fwd.redis.xpending(c.stream, c.group))["pending"] == 0


async def test_refused_fills_get_their_refusal_and_the_rest_of_the_batch_goes_straight(
    fwd: Forwarding,
) -> None:
    s = fwd.settings.streams
    invalid = await fwd.send(fwd.fill(quantity=-1))
    other_lane = fwd.signer.bearer("trading_engine", sub="engine-b")  # not this lane's client
    unbound = await fwd.send(fwd.fill(authorization=other_lane))
    outside = fwd.signer.bearer("trading_engine", sub=LANE, portfolios=[str(uuid.uuid4())])
    foreign = await fwd.send(fwd.fill(authorization=outside))
    good = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())
    await fwd.integration.relay.publish_once()  # the refusals went the pipeline's way

    ev, signer = await fwd.outcome(invalid)
    assert (ev["type"], ev["data"]["code"], signer) == (
        ENTRY_REFUSED,
        "invalid_payload",
        INTEGRATION,
    ), ev
    ev, signer = await fwd.outcome(unbound)
    assert (ev["type"], ev["data"]["code"], signer) == (ENTRY_REFUSED, "forbidden", INTEGRATION)
    (denied,) = await audited(fwd, unbound["id"])
    assert denied["action"] == "command.denied"
    # The account service knows the account's portfolio: it refuses the scope, as before.
    (rejected,) = await outcomes(fwd.redis, s.key(ACCOUNT_EVENTS), foreign["id"], want=1)
    assert (rejected["type"], rejected["data"]["code"]) == ("alluse.command.rejected", "forbidden")
    records = await audited(fwd, foreign["id"])
    assert [r["details"]["code"] for r in records] == ["forbidden"]
    # The engine hears it on its own lane, as it sent it, from the account service.
    ev, signer = await fwd.outcome(foreign)
    assert (ev["type"], ev["data"]["code"], ev["data"]["type"], signer) == (
        ENTRY_REFUSED,
        "forbidden",
        "ws4.trade.filled",
        ACCOUNT,
    ), ev
    ev, signer = await fwd.outcome(good)
    assert (ev["type"], signer) == (ENTRY_APPLIED, ACCOUNT), ev
    c = fwd.consumer
    assert (await fwd.redis.xpending(c.stream, c.group))["pending"] == 0


async def test_assignments_and_expirations_outside_the_scope_are_refused_on_the_lane(
    fwd: Forwarding,
) -> None:
    outside = fwd.signer.bearer("trading_engine", sub=LANE, portfolios=[str(uuid.uuid4())])
    option = {"account_id": fwd.account_id, "symbol": "TSLA", "option_type": "put"}
    assigned = {**option, "assignment_id": "as-1", "strike": "250.00", "contracts": 1}
    expired = {**option, "expiration_id": "ex-1", "strike": "250.00", "contracts": 1}
    expired["expiration"] = "2026-12-04"
    sent = [
        await fwd.send(ce(t, data, source=f"ws4/{LANE}", authorization=outside))
        for t, data in (("ws4.option.assigned", assigned), ("ws4.option.expired", expired))
    ]
    good = await fwd.send(fwd.fill())  # same account, same partition: applied after them
    await fwd.consumer.handle(await fwd.read())
    ev, _ = await fwd.outcome(good)
    assert ev["type"] == ENTRY_APPLIED, ev
    # The barrier: outcomes are published in commit order, so theirs are out by now.
    key = fwd.settings.streams.outcomes(LANE)
    for entry in sent:
        ((ev, raw),) = await of(fwd.redis, key, entry["id"])
        signer = await signer_of(fwd.keys, text_fields(raw))
        assert (ev["type"], ev["data"]["code"], ev["data"]["type"], signer) == (
            ENTRY_REFUSED,
            "forbidden",
            entry["type"],
            ACCOUNT,
        ), ev


async def test_fills_wait_in_the_outbox_while_redis_cannot_confirm_durability(
    fwd: Forwarding, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with durability required on a Redis without AOF (docs/architecture.md), on any
    test server."""

    async def unconfirmable(_: Redis) -> bool:
        return False

    monkeypatch.setattr(fwd.integration.relay.durability, "ready", unconfirmable)
    sent = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())
    kept = await fwd.integration.pool.fetch("SELECT fields FROM outbox")
    assert [json.loads(r["fields"])["id"] for r in kept] == [sent["id"]]
    known = await fwd.integration.pool.fetchval(
        "SELECT count(*) FROM inbox WHERE id = $1", sent["id"]
    )
    assert known == 1  # the pipeline's way: inbox and outbox rows in one transaction

    monkeypatch.undo()  # Redis confirms again: the relay publishes what was kept
    await fwd.integration.relay.publish_once()
    applied, signer = await fwd.outcome(sent)
    assert (applied["type"], signer) == (ENTRY_APPLIED, ACCOUNT), applied


async def test_fills_never_overtake_the_outbox_and_a_known_key_is_the_pipelines_replay(
    fwd: Forwarding, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the outbox holds an effect, the next fill goes through the pipeline behind it;
    a fill whose key the pipeline's inbox knows is the pipeline's to replay, not forwarded."""

    async def unconfirmable(_: Redis) -> bool:
        return False

    monkeypatch.setattr(fwd.integration.relay.durability, "ready", unconfirmable)
    first = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())  # kept in the outbox, its key in the inbox
    monkeypatch.undo()  # Redis confirms again, but the relay has not run yet
    second = await fwd.send(fwd.fill())
    await fwd.consumer.handle(await fwd.read())
    kept = await fwd.integration.pool.fetch("SELECT fields FROM outbox ORDER BY seq")
    assert [json.loads(r["fields"])["id"] for r in kept] == [first["id"], second["id"]]
    await fwd.integration.relay.publish_once()
    for sent in (first, second):
        applied, _ = await fwd.outcome(sent)
        assert applied["type"] == ENTRY_APPLIED, applied

    await fwd.send(first)  # known here: its outcome replayed through the outbox
    await fwd.consumer.handle(await fwd.read())
    (replayed,) = await fwd.integration.pool.fetch("SELECT fields FROM outbox")
    assert json.loads(replayed["fields"])["id"] == first["id"]
    await fwd.integration.relay.publish_once()
    again, _ = await fwd.again(first)
    assert again["type"] == ENTRY_DUPLICATE, again
