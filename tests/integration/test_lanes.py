"""Lanes (docs/lanes.md) through the real account and integration services, lanes required:
plain redis-py writers, each in its own lane; one outcome per entry on the writer's outcome
stream, signed by the service that decided it (issue 18, findings 2, 4 and 7)."""

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from services.account.app import build as build_account
from services.integration.app import build as build_integration
from shared.contracts.answers import ENTRY_APPLIED, ENTRY_DUPLICATE, ENTRY_REFUSED
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EVENTS,
    ACCOUNT_QUERIES,
    OPERATOR_LANE,
    WS4_EVENTS,
)
from shared.contracts.trust import ACCOUNT, INTEGRATION
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from shared.infra.trust.keys import KeySet
from shared.infra.trust.signing import signer_of, text_fields
from tests.conftest import as_service
from tests.integration.test_integration_service import fill
from tests.support.streams import ce, decoded, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

MAX_ID = "18446744073709551615-18446744073709551615"


@dataclass
class Lanes:
    redis: Redis
    settings: Settings
    signer: Signer
    keys: KeySet
    runtimes: list[Runtime]
    generation: str = ""

    def lane(self, stream: str, lane: str) -> str:
        return self.settings.streams.lane(stream, lane)

    async def send(self, stream: str, lane: str, fields: dict[str, str]) -> dict[str, str]:
        await xadd(self.redis, self.lane(stream, lane), fields)
        return fields

    async def outcome(self, lane: str, sent: dict[str, str], *, timeout: float = 10) -> Any:
        """The one outcome of `sent` on the lane's outcome stream, with who signed it."""
        key = self.settings.streams.outcomes(lane)
        (found,) = await until_found(self.redis, key, sent["id"], timeout)
        return found

    async def signer_of(self, raw: dict[bytes, bytes]) -> str:
        return await signer_of(self.keys, text_fields(raw))

    async def register(self, *lanes: str) -> None:
        await self.redis.sadd(self.settings.streams.lanes, *lanes)

    def engine(self, name: str) -> str:
        return self.signer.bearer("trading_engine", sub=name)


async def until_found(
    redis: Redis, key: str, entry_id: str, timeout: float
) -> list[tuple[dict[str, Any], dict[bytes, bytes]]]:
    async def probe() -> int:
        return len(await of(redis, key, entry_id))

    await until(probe, equals=1, timeout=timeout)
    return await of(redis, key, entry_id)


async def of(
    redis: Redis, key: str, entry_id: str
) -> list[tuple[dict[str, Any], dict[bytes, bytes]]]:
    found = [(decoded(f), f) for _, f in await entries(redis, key)]
    return [(ev, raw) for ev, raw in found if ev["data"].get("id") == entry_id]


@pytest.fixture
async def lanes(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Lanes]:
    required = settings.model_copy(update={"lanes": "required"})
    integration = as_service(required, signer, "integration")
    runtimes = [
        await build_account(required),
        await build_integration(integration, schema=f"integration_{uuid.uuid4().hex[:8]}"),
    ]
    keys = KeySet.from_url(signer.jwks_url)
    t = Lanes(redis, required, signer, keys, runtimes)
    await t.register("engine-a", "engine-b")
    async with running(runtimes[0]), running(runtimes[1]):
        init = ce(
            "alluse.system.initialize",
            {"total_capital": "250000.00"},
            authorization=signer.bearer("admin"),
        )
        await t.send(ACCOUNT_COMMANDS, OPERATOR_LANE, init)
        ev, _raw = await t.outcome(OPERATOR_LANE, init)
        assert ev["type"] == ENTRY_APPLIED, ev
        events = await outcomes(redis, required.streams.key(ACCOUNT_EVENTS), init["id"], want=4)
        initialized = next(e for e in events if e["type"] == "alluse.system.initialized")
        accounts = {a["type"]: a for a in initialized["data"]["accounts"]}
        t.generation = accounts["generation"]["id"]
        yield t


async def test_a_command_in_the_operators_lane_gets_one_signed_applied_outcome(
    lanes: Lanes,
) -> None:
    deposit = ce(
        "alluse.account.deposit",
        {"amount": "100.00"},
        subject=lanes.generation,
        authorization=lanes.signer.bearer("operator"),
    )
    await lanes.send(ACCOUNT_COMMANDS, OPERATOR_LANE, deposit)
    ev, raw = await lanes.outcome(OPERATOR_LANE, deposit)
    assert ev["type"] == ENTRY_APPLIED
    assert ev["data"]["stream"] == ACCOUNT_COMMANDS
    assert (ev["data"]["source"], ev["data"]["type"]) == (deposit["source"], deposit["type"])
    assert ev["causationid"] == deposit["id"] and ev["subject"] == lanes.generation
    assert [e["type"] for e in ev["data"]["events"]] == ["alluse.account.balance_changed"]
    assert await lanes.signer_of(raw) == ACCOUNT
    # Sent again: one more outcome, a duplicate of the applied entry, with its events again.
    await lanes.send(ACCOUNT_COMMANDS, OPERATOR_LANE, deposit)
    key = lanes.settings.streams.outcomes(OPERATOR_LANE)

    async def count() -> int:
        return len(await of(lanes.redis, key, deposit["id"]))

    await until(count, equals=2)
    again, _ = (await of(lanes.redis, key, deposit["id"]))[1]
    assert again["type"] == ENTRY_DUPLICATE
    assert again["data"]["of"] == {"source": deposit["source"], "id": deposit["id"]}
    assert again["data"]["events"] == ev["data"]["events"]


async def test_an_applied_entry_sent_again_with_its_token_expired_is_a_duplicate(
    lanes: Lanes,
) -> None:
    """Redelivered after its token expired (or was revoked): the same writer's entry, its key
    applied, is a duplicate, never refused afterwards; a forged token or another lane is not
    that writer's, and is refused."""
    deposit = ce(
        "alluse.account.deposit",
        {"amount": "100.00"},
        subject=lanes.generation,
        authorization=lanes.signer.bearer("operator"),
    )
    await lanes.send(ACCOUNT_COMMANDS, OPERATOR_LANE, deposit)
    applied, _ = await lanes.outcome(OPERATOR_LANE, deposit)
    assert applied["type"] == ENTRY_APPLIED, applied

    past = int(time.time()) - 3600
    expired = lanes.signer.bearer("operator", iat=past, nbf=past, exp=past + 900)
    claims = lanes.signer.claims("operator")
    forged_key = Ed25519PrivateKey.generate()  # a stranger's key under the platform's kid
    forged = jwt.encode(claims, forged_key, algorithm="EdDSA", headers={"kid": lanes.signer.kid})
    key = lanes.settings.streams.outcomes(OPERATOR_LANE)

    async def count() -> int:
        return len(await of(lanes.redis, key, deposit["id"]))

    await lanes.send(ACCOUNT_COMMANDS, OPERATOR_LANE, {**deposit, "authorization": expired})
    await until(count, equals=2)
    await lanes.send(
        ACCOUNT_COMMANDS, OPERATOR_LANE, {**deposit, "authorization": f"Bearer {forged}"}
    )
    await until(count, equals=3)
    # The same genuine, expired token through a lane that is not its writer's.
    await lanes.send(ACCOUNT_COMMANDS, "engine-a", {**deposit, "authorization": expired})
    elsewhere, _ = await lanes.outcome("engine-a", deposit)
    assert (elsewhere["type"], elsewhere["data"]["code"]) == (ENTRY_REFUSED, "unauthorized")

    _, (again, _), (refused, _) = await of(lanes.redis, key, deposit["id"])
    assert again["type"] == ENTRY_DUPLICATE, again
    assert again["data"]["of"] == {"source": deposit["source"], "id": deposit["id"]}
    assert again["data"]["events"] == applied["data"]["events"]
    assert (refused["type"], refused["data"]["code"]) == (ENTRY_REFUSED, "unauthorized")
    # Booked once: the three outcomes after it are the barrier.
    events = await entries(lanes.redis, lanes.settings.streams.key(ACCOUNT_EVENTS))
    booked = {
        e["id"]
        for e in map(decoded, (f for _, f in events))
        if e["type"] == "alluse.account.balance_changed" and e.get("causationid") == deposit["id"]
    }
    assert len(booked) == 1


async def test_the_shared_stream_is_refused_and_a_token_outside_its_lane_too(
    lanes: Lanes,
) -> None:
    """Lanes required: an entry written straight to the shared stream is refused `forbidden`
    ("write to your lane"); in a lane, only the lane's own principal is believed."""
    s = lanes.settings.streams
    straight = ce(
        "alluse.account.deposit",
        {"amount": "5.00"},
        subject=lanes.generation,
        authorization=lanes.signer.bearer("admin"),
    )
    await xadd(lanes.redis, s.key(ACCOUNT_COMMANDS), straight)
    (rejected,) = await outcomes(lanes.redis, s.key(ACCOUNT_EVENTS), straight["id"])
    assert rejected["data"]["code"] == "forbidden"
    assert "write to your lane" in rejected["data"]["reason"]
    # Engine B's token in engine A's lane, a viewer's in the operators' lane, engine A's in the
    # operators' lane: each refused on the lane it came through, nothing applied.
    cases = [
        ("engine-a", lanes.engine("engine-b")),
        (OPERATOR_LANE, lanes.signer.bearer("viewer")),
        (OPERATOR_LANE, lanes.signer.bearer("admin", sub="engine-a")),
    ]
    for lane, token in cases:
        sent = ce(
            "alluse.account.deposit",
            {"amount": "5.00"},
            subject=lanes.generation,
            authorization=token,
        )
        await lanes.send(ACCOUNT_COMMANDS, lane, sent)
        ev, raw = await lanes.outcome(lane, sent)
        assert ev["type"] == ENTRY_REFUSED, ev
        assert ev["data"]["code"] in ("forbidden",), ev
        assert ev["data"]["type"] == "alluse.account.deposit"
        assert ev["data"]["dataschema"].endswith("/alluse.entry.refused/1.json")
        assert await lanes.signer_of(raw) == ACCOUNT


async def test_a_lane_field_written_by_the_client_is_dropped(lanes: Lanes) -> None:
    """Engine A names the operators' lane in its entry: the router sets its own lane."""
    sent = ce(
        "ws4.trade.filled",
        fill(lanes.generation),
        source="ws4/engine-a",
        authorization=lanes.engine("engine-a"),
        lane=OPERATOR_LANE,
    )
    await lanes.send(WS4_EVENTS, "engine-a", sent)
    ev, _raw = await lanes.outcome("engine-a", sent)
    assert ev["type"] == ENTRY_APPLIED, ev
    assert await of(lanes.redis, lanes.settings.streams.outcomes(OPERATOR_LANE), sent["id"]) == []


async def test_an_engine_hears_of_every_upstream_entry_on_its_own_lane(lanes: Lanes) -> None:
    """Finding 7: a fill applied (by the account service, naming the type sent), the same fill
    again (duplicate), a fill refused by the account service (`ws4.trade.filled`, not the
    internal effect type), a payload refused by the integration service, a quote decided by
    the integration service."""
    eng = lanes.engine("engine-a")
    applied = ce(
        "ws4.trade.filled", fill(lanes.generation), source="ws4/engine-a", authorization=eng
    )
    await lanes.send(WS4_EVENTS, "engine-a", applied)
    ev, raw = await lanes.outcome("engine-a", applied)
    assert ev["type"] == ENTRY_APPLIED, ev
    assert ev["data"]["type"] == "ws4.trade.filled" and ev["data"]["stream"] == WS4_EVENTS
    assert "alluse.account.balance_changed" in [e["type"] for e in ev["data"]["events"]]
    assert await lanes.signer_of(raw) == ACCOUNT

    await lanes.send(WS4_EVENTS, "engine-a", applied)  # the very same entry again
    key = lanes.settings.streams.outcomes("engine-a")

    async def count() -> int:
        return len(await of(lanes.redis, key, applied["id"]))

    await until(count, equals=2)
    assert (await of(lanes.redis, key, applied["id"]))[1][0]["type"] == ENTRY_DUPLICATE

    unknown = ce(
        "ws4.trade.filled", fill(str(uuid.uuid4())), source="ws4/engine-a", authorization=eng
    )
    await lanes.send(WS4_EVENTS, "engine-a", unknown)
    ev, raw = await lanes.outcome("engine-a", unknown)
    assert ev["type"] == ENTRY_REFUSED, ev
    assert ev["data"]["type"] == "ws4.trade.filled" and ev["data"]["code"] == "unknown_account"
    assert await lanes.signer_of(raw) == ACCOUNT

    bad = ce(
        "ws4.trade.filled",
        fill(lanes.generation, quantity=-1),
        source="ws4/engine-a",
        authorization=eng,
    )
    await lanes.send(WS4_EVENTS, "engine-a", bad)
    ev, raw = await lanes.outcome("engine-a", bad)
    assert ev["type"] == ENTRY_REFUSED and ev["data"]["code"] == "invalid_payload", ev
    assert await lanes.signer_of(raw) == INTEGRATION

    quote = {
        "symbol": "TSLA",
        "bid": "250.90",
        "ask": "251.10",
        "last": "251.00",
        "as_of": "2026-11-26T15:00:00Z",
    }
    q = ce("ws4.market.quote", quote, source="ws4/engine-a", authorization=eng)
    await lanes.send(WS4_EVENTS, "engine-a", q)
    ev, raw = await lanes.outcome("engine-a", q)
    assert ev["type"] == ENTRY_APPLIED, ev
    assert await lanes.signer_of(raw) == INTEGRATION


async def test_a_query_is_answered_on_the_lanes_reply_stream_with_its_outcome(
    lanes: Lanes,
) -> None:
    s = lanes.settings.streams
    box = s.replies("engine-a") + uuid.uuid4().hex
    sent = ce(
        "alluse.query.summary",
        {},
        authorization=lanes.signer.bearer("admin", sub="engine-a"),
        replyto=box,
    )
    await lanes.send(ACCOUNT_QUERIES, "engine-a", sent)
    ev, _raw = await lanes.outcome("engine-a", sent)
    assert ev["type"] == ENTRY_APPLIED and ev["data"]["stream"] == ACCOUNT_QUERIES, ev
    (answer,) = [decoded(f) for _, f in await entries(lanes.redis, box)]
    assert answer["causationid"] == sent["id"]
    assert ev["data"]["events"] == [{"type": answer["type"], "id": answer["id"]}]
    # A `replyto` outside the lane's namespace is refused on the lane, answered nowhere else.
    elsewhere = s.replies("engine-b") + uuid.uuid4().hex
    wrong = ce(
        "alluse.query.summary",
        {},
        authorization=lanes.signer.bearer("admin", sub="engine-a"),
        replyto=elsewhere,
    )
    await lanes.send(ACCOUNT_QUERIES, "engine-a", wrong)
    ev, _ = await lanes.outcome("engine-a", wrong)
    assert ev["type"] == ENTRY_REFUSED and "replyto" in ev["data"]["reason"], ev
    assert await lanes.redis.exists(elsewhere) == 0


async def test_what_an_engine_does_to_its_own_lane_hurts_only_its_lane(lanes: Lanes) -> None:
    """Finding 4: MAXLEN 0 and the largest id on its own lane; an entry that cannot be moved.
    The other engine's fills are applied all along, and the router never spins: the entry it
    cannot move is dead-lettered with the reason, and the exhausted lane is reset, so its
    owner can write again."""
    a, b = lanes.lane(WS4_EVENTS, "engine-a"), lanes.lane(WS4_EVENTS, "engine-b")
    fill_a = ce(
        "ws4.trade.filled",
        fill(lanes.generation),
        source="ws4/engine-a",
        authorization=lanes.engine("engine-a"),
    )
    await xadd(lanes.redis, a, {"x": "y"}, maxlen=0)
    await xadd(lanes.redis, a, fill_a, id=MAX_ID)
    fill_b = ce(
        "ws4.trade.filled",
        fill(lanes.generation),
        source="ws4/engine-b",
        authorization=lanes.engine("engine-b"),
    )
    await lanes.send(WS4_EVENTS, "engine-b", fill_b)
    ev, _ = await lanes.outcome("engine-b", fill_b)
    assert ev["type"] == ENTRY_APPLIED, ev
    # Too many fields to move in one step: dead-lettered with the reason, the lane goes on.
    huge = {f"f{i}": "x" for i in range(4100)}
    await xadd(lanes.redis, b, huge)
    after = ce(
        "ws4.trade.filled",
        fill(lanes.generation),
        source="ws4/engine-b",
        authorization=lanes.engine("engine-b"),
    )
    await lanes.send(WS4_EVENTS, "engine-b", after)
    ev, _ = await lanes.outcome("engine-b", after)
    assert ev["type"] == ENTRY_APPLIED, ev
    dlq = lanes.settings.streams.dlq(WS4_EVENTS)
    letters = [decoded_raw(f) for _, f in await entries(lanes.redis, dlq)]
    assert any("too many fields" in d["dlq_reason"] for d in letters), letters
    # Engine A's lane, given the largest id, was routed and reset: it writes again.
    again = ce(
        "ws4.trade.filled",
        fill(lanes.generation),
        source="ws4/engine-a",
        authorization=lanes.engine("engine-a"),
    )

    async def writable() -> bool:
        try:
            await xadd(lanes.redis, a, again)
        except Exception:
            return False
        return True

    await until(writable, equals=True)
    ev, _ = await lanes.outcome("engine-a", again)
    assert ev["type"] == ENTRY_APPLIED, ev


async def test_an_entry_its_router_cannot_move_is_refused_on_its_lane_as_undeliverable(
    lanes: Lanes,
) -> None:
    sent = ce(
        "ws4.trade.filled",
        fill(lanes.generation),
        source="ws4/engine-b",
        authorization=lanes.engine("engine-b"),
    )
    huge = {**sent, **{f"f{i}": "x" for i in range(4100)}}  # too many fields to move
    await lanes.send(WS4_EVENTS, "engine-b", huge)
    ev, raw = await lanes.outcome("engine-b", sent)
    assert ev["type"] == ENTRY_REFUSED, ev
    assert ev["data"]["code"] == "undeliverable"
    assert "too many fields" in ev["data"]["reason"]
    assert (ev["data"]["stream"], ev["data"]["type"]) == (WS4_EVENTS, "ws4.trade.filled")
    assert ev["causationid"] == sent["id"]
    assert await lanes.signer_of(raw) == INTEGRATION
    dlq = lanes.settings.streams.dlq(WS4_EVENTS)
    letters = [decoded_raw(f) for _, f in await entries(lanes.redis, dlq)]
    assert [d["id"] for d in letters] == [sent["id"]]


async def test_a_fill_re_sent_under_a_new_entry_id_is_a_duplicate_of_the_applied_entry(
    lanes: Lanes,
) -> None:
    figures = fill(lanes.generation)
    first = ce(
        "ws4.trade.filled", figures, source="ws4/engine-a", authorization=lanes.engine("engine-a")
    )
    await lanes.send(WS4_EVENTS, "engine-a", first)
    applied, _ = await lanes.outcome("engine-a", first)
    assert applied["type"] == ENTRY_APPLIED, applied
    assert applied["data"]["events"]
    # The same fill id and figures, under a new entry id: nothing happens, and the engine
    # learns which entry applied it.
    again = ce(
        "ws4.trade.filled", figures, source="ws4/engine-a", authorization=lanes.engine("engine-a")
    )
    assert again["id"] != first["id"]
    await lanes.send(WS4_EVENTS, "engine-a", again)
    ev, raw = await lanes.outcome("engine-a", again)
    assert ev["type"] == ENTRY_DUPLICATE, ev
    assert ev["data"]["of"] == {"source": first["source"], "id": first["id"]}
    assert ev["data"]["events"] == []
    assert ev["data"]["type"] == "ws4.trade.filled"
    assert await lanes.signer_of(raw) == ACCOUNT
    # Nothing was booked twice: the duplicate's outcome, committed with whatever it caused,
    # is the barrier; the lifecycle events name the first entry only.
    events = await entries(lanes.redis, lanes.settings.streams.key(ACCOUNT_EVENTS))
    causes = {decoded(f).get("causationid") for _, f in events}
    assert first["id"] in causes and again["id"] not in causes


async def test_a_consumed_stream_deleted_under_the_service_comes_back(lanes: Lanes) -> None:
    s = lanes.settings.streams
    await lanes.redis.delete(s.key(ACCOUNT_QUERIES))
    box = s.replies(OPERATOR_LANE) + uuid.uuid4().hex
    sent = ce("alluse.query.summary", {}, authorization=lanes.signer.bearer("admin"), replyto=box)

    async def answered() -> bool:  # sent until the group is back (an entry before is lost)
        await lanes.send(ACCOUNT_QUERIES, OPERATOR_LANE, {**sent, "id": uuid.uuid4().hex})
        return bool(await lanes.redis.xread({box: "0-0"}, block=300))

    await until(answered, equals=True, timeout=20)


def decoded_raw(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
