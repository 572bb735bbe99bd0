"""Tokens do not linger: after a run through the whole platform (commands applied, refused and
dead-lettered, queries, upstream fills and weeks), no stream the platform owns holds a bearer
token; the producers' upstream streams lose theirs with their retention."""

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_LIFECYCLE, WS2_EVENTS, WS4_EVENTS
from shared.infra.runtime.settings import Settings
from shared.infra.stream.retention import Retained, trim
from tests.support.account import rejection
from tests.support.platform import Platform, platform
from tests.support.streams import ce, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

JWT = re.compile(rb"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")  # a compact JWS: header.claims.signature


@pytest.fixture
async def run(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Platform]:
    async with platform(settings, redis, signer) as p:
        yield p


def bearer_tokens(fields: dict[bytes, bytes]) -> list[bytes]:
    """Every field that carries a bearer token (a redacted copy carries none)."""
    return [
        k
        for k, v in fields.items()
        if JWT.search(v) or (k == b"authorization" and v != b"[redacted]") or b"Bearer " in v
    ]


async def test_no_stream_the_platform_owns_keeps_a_bearer_token_after_a_run(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    c, s = run.client, settings.streams
    await c.command("alluse.account.deposit", {"amount": "10.00"}, subject=run.account)
    rejection(
        await c.command("alluse.account.withdraw", {"amount": "999999.00"}, subject=run.account)
    )
    rejection(
        await c.command(
            "alluse.account.deposit", {"amount": "1.00"}, role="viewer", subject=run.account
        )
    )
    await c.query("alluse.query.account", {"account_id": run.account})
    dead = {**ce("alluse.account.deposit", {}, authorization=signer.bearer()), "data": "[1]"}
    await xadd(redis, s.key(ACCOUNT_COMMANDS), dead)
    engine = signer.bearer("trading_engine")
    week = ce(
        "ws2.week.classified",
        {"week_start": "2026-11-23", "week_type": "P-EW", "confidence": "0.80"},
        source="ws2/engine",
        authorization=engine,
    )
    fill = ce(
        "ws4.trade.filled",
        {
            "fill_id": f"fill-{uuid.uuid4().hex}",
            "order_id": "o-1",
            "account_id": run.account,
            "symbol": "TSLA",
            "instrument_type": "stock",
            "side": "buy",
            "quantity": 1,
            "price": "10.00",
            "commission": "1.00",
            "filled_at": "2026-11-26T14:02:11Z",
        },
        source="ws4/gateway",
        authorization=engine,
    )
    await xadd(redis, s.key(WS2_EVENTS), week)
    await xadd(redis, s.key(WS4_EVENTS), fill)
    lifecycle = s.key(ACCOUNT_LIFECYCLE)
    assert await outcomes(redis, lifecycle, week["id"])
    assert await outcomes(redis, lifecycle, fill["id"])
    await until(lambda: redis.xlen(s.dlq(ACCOUNT_COMMANDS)), equals=1)
    upstream = {s.key(WS2_EVENTS), s.key(WS4_EVENTS)}

    holding: dict[str, list[bytes]] = {}
    streams = [k.decode() async for k in redis.scan_iter(match=f"{s.prefix}*", _type="STREAM")]
    assert s.key(ACCOUNT_COMMANDS) in streams and lifecycle in streams
    for key in streams:
        for _, fields in await entries(redis, key):
            if found := bearer_tokens(fields):
                holding.setdefault(key, []).extend(found)
    assert set(holding) <= upstream, {k: v for k, v in holding.items() if k not in upstream}

    # The producers' streams lose them with their retention, once the service has read them.
    for key in upstream:
        assert await trim(redis, Retained(key, timedelta(0), frozenset({"integration"}))) >= 1
        assert not any(bearer_tokens(f) for _, f in await entries(redis, key))
