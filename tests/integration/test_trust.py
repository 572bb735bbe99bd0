"""Zero trust on every stream: each entry an attacker on the same host could write with plain
redis-py is refused, through the real services, and changes nothing; the honest entry that
follows it is applied as if the forgery had never been written."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import jwt
import pytest
from redis.asyncio import Redis

from services.account.app import build as build_account
from services.integration.app import build as build_integration
from shared.contracts.envelope import new_event
from shared.contracts.streams import (
    ACCOUNT_COMMANDS,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    ACCOUNT_QUERIES,
    AUDIT,
    REVOCATIONS,
    WS4_EVENTS,
)
from shared.contracts.trust import REVOKED, reply_namespace
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from tests.conftest import as_service
from tests.support.account import Client, rejection
from tests.support.streams import caused, ce, decoded, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until


def fill(account_id: str, amount_price: str = "3.50") -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex,
        "order_id": "o-1",
        "account_id": account_id,
        "symbol": "NVDA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "120.00",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 2,
        "price": amount_price,
        "multiplier": 100,
        "commission": "1.30",
        "filled_at": "2026-11-26T15:00:00Z",
    }


async def balance(client: Client, account_id: str) -> str:
    answer = await client.query("alluse.query.account", {"account_id": account_id})
    return str(answer["data"]["balance"])


@pytest.fixture
async def integration(settings: Settings, signer: Signer, redis: Redis) -> AsyncIterator[Runtime]:
    own = as_service(settings, signer, "integration")
    rt = await build_integration(own, schema=f"integration_{uuid.uuid4().hex[:8]}")
    async with running(rt):
        yield rt


# --- forged writers of the platform's own streams ---------------------------------------------


async def test_a_fill_without_an_engines_token_is_refused_then_the_real_one_is_forwarded(
    integration: Runtime, redis: Redis, settings: Settings, signer: Signer
) -> None:
    s, account = settings.streams, str(uuid.uuid4())
    data = fill(account)
    forged = ce("ws4.trade.filled", data, source="ws4/gateway-1", subject=account)
    viewer = {**forged, "authorization": signer.bearer("viewer")}
    operator = {**forged, "authorization": signer.bearer("operator")}
    for entry in (forged, viewer, operator):  # the same (source, id) each time
        await xadd(redis, s.key(WS4_EVENTS), entry)
    got = await outcomes(redis, s.key(ACCOUNT_LIFECYCLE), forged["id"], want=3)
    assert sorted(e["data"]["code"] for e in got) == ["forbidden", "forbidden", "unauthorized"]
    engine = {**forged, "authorization": signer.bearer("trading_engine")}
    await xadd(redis, s.key(WS4_EVENTS), engine)
    # On the public effects stream, for a router to place: no account service runs, so none
    # has said how many partitions it reads.
    effects = await wait_for(redis, s.key(ACCOUNT_EFFECTS), lambda e: e["id"] == forged["id"])
    assert effects["type"] == "alluse.effect.trade_filled"
    assert effects["signature"].startswith("integration-")  # the integration service's proof


async def wait_for(redis: Redis, stream: str, match: Any, timeout: float = 10) -> dict[str, Any]:
    async def matching() -> list[dict[str, Any]]:
        return [e for _, f in await entries(redis, stream) if match(e := decoded(f))]

    return (await until(matching, timeout=timeout, what=f"a match on {stream}"))[0]


async def test_a_forged_effect_credits_nothing_and_claims_no_key(
    client: Client, signer: Signer
) -> None:
    gen = (await client.initialize())["generation"]
    before = await balance(client, gen["id"])
    data = fill(gen["id"])
    effect = ce("alluse.effect.trade_filled", data, source="ws4/gateway-1", subject=gen["id"])
    s = client.s
    await xadd(client.redis, s.key(ACCOUNT_EFFECTS), effect)
    (unsigned,) = await outcomes(client.redis, s.key(ACCOUNT_EVENTS), effect["id"])
    assert rejection([unsigned])["code"] == "unauthorized"
    # Signed, but by a service that does not own effects.
    await xadd(client.redis, s.key(ACCOUNT_EFFECTS), signer.sign("account", effect))
    got = await outcomes(client.redis, s.key(ACCOUNT_EVENTS), effect["id"], want=2)
    assert sorted(rejection([e])["code"] for e in got) == ["forbidden", "unauthorized"]
    # Tampered after signing: the signature covers every field.
    tampered = {**signer.sign("integration", effect), "subject": str(uuid.uuid4())}
    await xadd(client.redis, s.key(ACCOUNT_EFFECTS), tampered)
    await outcomes(client.redis, s.key(ACCOUNT_EVENTS), effect["id"], want=3)
    assert await balance(client, gen["id"]) == before
    # The same (source, id), signed by the integration service: applied once, normally.
    events = await client.effect("trade_filled", data, id_=effect["id"], want=4)
    (credited,) = [e for e in events if e["type"] == "alluse.account.balance_changed"]
    assert credited["data"]["transaction"]["amount"] == "698.70"  # 2 x 3.50 x 100 - 1.30


async def test_an_effect_signed_before_the_deduplication_window_is_refused_as_a_replay(
    client: Client, signer: Signer, settings: Settings
) -> None:
    """After the inbox forgets a (source, id), only the signing time tells a copy of an old
    entry from a new one: a signature older than the window is not believed."""
    gen = (await client.initialize())["generation"]
    before = await balance(client, gen["id"])
    data = fill(gen["id"])
    effect = ce("alluse.effect.trade_filled", data, source="ws4/gateway-1", subject=gen["id"])
    then = time.time() - settings.dedup_window.total_seconds() - 60
    with patch("shared.infra.trust.signing.time.time", return_value=then):
        replayed = signer.sign("integration", effect)
    await xadd(client.redis, client.s.key(ACCOUNT_EFFECTS), replayed)
    (refused,) = await outcomes(client.redis, client.s.key(ACCOUNT_EVENTS), effect["id"])
    assert rejection([refused])["code"] == "unauthorized"
    assert "deduplication window" in rejection([refused])["reason"]
    assert await balance(client, gen["id"]) == before
    # Signed now, the same (source, id) is applied: the refusal claimed nothing.
    events = await client.effect("trade_filled", data, id_=effect["id"], want=2)
    assert [e for e in events if e["type"] == "alluse.account.balance_changed"]


async def test_a_forged_account_event_is_not_republished(
    integration: Runtime, redis: Redis, settings: Settings, signer: Signer
) -> None:
    s, account = settings.streams, str(uuid.uuid4())
    data = {"account_id": account, "balance": "1000000.00"}
    forged = new_event(
        "alluse.account.balance_changed", "alluse/account-service", data, subject=account
    )
    await xadd(redis, s.key(ACCOUNT_EVENTS), forged)
    await xadd(redis, s.key(ACCOUNT_EVENTS), signer.sign("integration", forged))
    got = await outcomes(redis, s.key(ACCOUNT_LIFECYCLE), forged["id"], want=2)
    assert sorted(e["data"]["code"] for e in got) == ["forbidden", "unauthorized"]
    honest = new_event(
        "alluse.account.closed",
        "alluse/account-service",
        {"account_id": account, "reason": "test"},
        subject=account,
    )
    await xadd(redis, s.key(ACCOUNT_EVENTS), signer.sign("account", honest))
    await wait_for(redis, s.key(ACCOUNT_LIFECYCLE), lambda e: e["id"] == honest["id"])
    lifecycle = [decoded(f) for _, f in await entries(redis, s.key(ACCOUNT_LIFECYCLE))]
    assert not [e for e in lifecycle if e["id"] == forged["id"]]  # never republished


async def test_a_forged_revocation_logs_nobody_out(
    client: Client, redis: Redis, settings: Settings, signer: Signer
) -> None:
    s = settings.streams
    kept, marker = signer.claims("admin"), signer.claims("admin")
    as_kept = (
        f"Bearer {jwt.encode(kept, signer.key, algorithm='EdDSA', headers={'kid': signer.kid})}"
    )
    as_marker = (
        f"Bearer {jwt.encode(marker, signer.key, algorithm='EdDSA', headers={'kid': signer.kid})}"
    )
    expiry = str(time.time() + 3600)
    everyone = {
        "type": REVOKED,
        "kind": "user",
        "value": kept["sub"],
        "at": expiry,
        "until": expiry,
    }
    await xadd(redis, s.key(REVOCATIONS), everyone)
    await xadd(redis, s.key(REVOCATIONS), signer.sign("account", everyone))
    # A genuine revocation after them: once it is in force, the forged ones were read.
    genuine = {"type": REVOKED, "kind": "jti", "value": marker["jti"], "until": expiry}
    await xadd(redis, s.key(REVOCATIONS), signer.sign("security", genuine))

    async def probe() -> dict[str, Any]:
        sent = ce("alluse.account.create", {"type": "revenue"}, authorization=as_marker)
        await xadd(redis, s.key(ACCOUNT_COMMANDS), sent)
        (seen,) = await outcomes(redis, s.key(ACCOUNT_EVENTS), sent["id"], want=1)
        return seen

    seen = await until(
        probe, lambda e: e["type"] == "alluse.command.rejected", what="the genuine revocation"
    )
    assert seen["data"]["code"] == "unauthorized" and "revoked" in seen["data"]["reason"]
    still = ce("alluse.account.create", {"type": "revenue"}, authorization=as_kept)
    await xadd(redis, s.key(ACCOUNT_COMMANDS), still)
    (created,) = await outcomes(redis, s.key(ACCOUNT_EVENTS), still["id"])
    assert created["type"] == "alluse.account.created"


# --- refusals never claim a key -------------------------------------------------------------


async def test_an_id_claimed_first_without_a_token_is_applied_when_the_admin_sends_it(
    client: Client, redis: Redis, settings: Settings, signer: Signer
) -> None:
    s = settings.streams
    cmd = ce("alluse.account.create", {"type": "revenue", "name": "real"}, source="ops/tool")
    squatter = {**cmd, "data": json.dumps({"type": "revenue", "name": "squatted"})}
    await xadd(redis, s.key(ACCOUNT_COMMANDS), squatter)
    (refused,) = await outcomes(redis, s.key(ACCOUNT_EVENTS), cmd["id"])
    assert refused["data"]["code"] == "unauthorized"
    await xadd(redis, s.key(ACCOUNT_COMMANDS), {**cmd, "authorization": signer.bearer("admin")})
    got = await outcomes(redis, s.key(ACCOUNT_EVENTS), cmd["id"], want=2)
    created = next(e for e in got if e["type"] == "alluse.account.created")
    assert created["data"]["account"]["name"] == "real"


# --- replies only where the caller may write ------------------------------------------------


async def test_replies_go_only_into_the_callers_namespace_and_other_keys_stay_untouched(
    client: Client, redis: Redis, settings: Settings, signer: Signer
) -> None:
    await client.initialize()
    s = settings.streams
    victim = s.key("someone.elses.stream")
    await xadd(redis, victim, {"keep": "me"})
    platform = s.key(ACCOUNT_LIFECYCLE)
    await xadd(redis, platform, {"keep": "me"})
    lengths = {k: await redis.xlen(k) for k in (victim, platform)}
    viewer = signer.bearer("viewer")
    query = {"account_id": str(uuid.uuid4())}
    for target in (victim, platform, reply_namespace(s.prefix, "user-admin") + "x"):
        await xadd(
            redis,
            s.key(ACCOUNT_QUERIES),
            ce("alluse.query.account", query, authorization=viewer, replyto=target),
        )
    no_token = reply_namespace(s.prefix, "user-viewer") + "anonymous"
    await xadd(redis, s.key(ACCOUNT_QUERIES), ce("alluse.query.account", query, replyto=no_token))
    # The caller's own stream, made by the caller: answered, and its expiry left as it was.
    mine = reply_namespace(s.prefix, "user-viewer") + uuid.uuid4().hex
    await xadd(redis, mine, {"opened": "by the caller"})
    await xadd(
        redis,
        s.key(ACCOUNT_QUERIES),
        ce("alluse.query.summary", {}, authorization=viewer, replyto=mine),
    )
    await until(lambda: redis.xlen(mine), lambda n: n >= 2, what="the answer on the caller's own")
    assert await redis.ttl(mine) == -1  # not ours: no expiry set
    dlq = s.key(ACCOUNT_QUERIES) + ".dlq"
    await until(lambda: redis.xlen(dlq), lambda n: n >= 4, what="the refused queries' dead letters")
    dead = [decoded(f) for _, f in await entries(redis, dlq)]
    reasons = sorted(d["dlq_reason"].split(":")[0] for d in dead)
    assert reasons == [
        "'replyto' must be a key under " + reply_namespace(s.prefix, "user-viewer")
    ] * 3 + ["unauthorized"], reasons
    assert {k: await redis.xlen(k) for k in lengths} == lengths
    records = [decoded(f)["data"] for _, f in await entries(redis, s.key(AUDIT))]
    assert sum(r["action"] == "query.denied" for r in records) == 4  # each refusal, audited
    assert await redis.ttl(victim) == -1 and await redis.ttl(platform) == -1
    assert not await redis.exists(no_token)


async def test_a_reply_stream_the_service_made_expires(client: Client) -> None:
    await client.initialize()
    answer = await client.query("alluse.query.summary", {})
    assert answer["type"] == "alluse.query.result"
    box = await newest_reply_box(client)
    assert 0 < await client.redis.ttl(box) <= 3600


async def newest_reply_box(client: Client) -> str:
    keys: list[str] = [
        k.decode() async for k in client.redis.scan_iter(match=f"{client.s.prefix}alluse.reply.*")
    ]
    assert keys
    return keys[-1]


# --- the keys: withdrawn, and unavailable ---------------------------------------------------


@pytest.fixture
async def own_keys(
    settings: Settings, redis: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Signer, Client]]:
    """The account service against a JWKS of this test's own, which it may rotate or take down;
    a withdrawn key is dropped at once (no grace)."""
    signer = Signer(tmp_path / "jwks.json")
    own = settings.model_copy(
        update={
            "jwks_url": signer.jwks_url,
            "jwks_grace_seconds": 0,
            "signing_key": signer.seed("account"),
        }
    )
    rt = await build_account(own)
    async with running(rt):
        yield signer, Client(redis, own, signer)


async def test_a_key_withdrawn_from_the_jwks_is_no_longer_trusted(
    own_keys: tuple[Signer, Client],
) -> None:
    signer, client = own_keys
    old_token = signer.token("admin")  # verified and cached below
    first = ce("alluse.account.create", {"type": "revenue"}, authorization=f"Bearer {old_token}")
    await xadd(client.redis, client.s.key(ACCOUNT_COMMANDS), first)
    (created,) = await outcomes(client.redis, client.s.key(ACCOUNT_EVENTS), first["id"])
    assert created["type"] == "alluse.account.created"
    signer.rotate()  # the old key leaves the JWKS
    # A token of the new key makes the service fetch the JWKS again, and drop the old key.
    (fresh,) = await client.command("alluse.account.create", {"type": "revenue"})
    assert fresh["type"] == "alluse.account.created"
    again = ce("alluse.account.create", {"type": "revenue"}, authorization=f"Bearer {old_token}")
    await xadd(client.redis, client.s.key(ACCOUNT_COMMANDS), again)
    (refused,) = await outcomes(client.redis, client.s.key(ACCOUNT_EVENTS), again["id"])
    assert refused["data"]["code"] == "unauthorized"


async def test_commands_wait_out_a_jwks_outage_and_are_applied_once_it_is_back(
    own_keys: tuple[Signer, Client], settings: Settings
) -> None:
    signer, client = own_keys
    signer.down = True
    cmd = ce("alluse.account.create", {"type": "revenue"}, authorization=signer.bearer())
    await xadd(client.redis, client.s.key(ACCOUNT_COMMANDS), cmd)
    # More attempts than deliveries allowed before dead-lettering: waiting is not failing.
    await until(
        lambda: asyncio.sleep(0, signer.requests),
        lambda asked: asked >= settings.max_deliveries + 2,
        timeout=30,
        what="requests for the keys",
    )
    signer.down = False
    (created,) = await outcomes(client.redis, client.s.key(ACCOUNT_EVENTS), cmd["id"], timeout=15)
    assert created["type"] == "alluse.account.created"
    # Nothing else, then or since: a refusal during the outage would have been committed before
    # the barrier's outcome, and so published before it.
    await client.barrier()
    assert [e["type"] for e in await caused(client.redis, client.events, cmd["id"])] == [
        "alluse.account.created"
    ]
    assert await client.redis.xlen(client.s.key(ACCOUNT_COMMANDS) + ".dlq") == 0
