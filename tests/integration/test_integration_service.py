"""The integration service in-process on real Redis and PostgreSQL: effects, week.changed,
republishing to the lifecycle stream, rejections and the DLQ, health details."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from random import Random
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from starlette.applications import Starlette

from services.integration.app import build
from shared.contracts.envelope import new_event
from shared.contracts.lifecycle import LIFECYCLE_TYPES, dataschema
from shared.contracts.streams import (
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    ACCOUNT_LIFECYCLE,
    WS2_EVENTS,
    WS4_EVENTS,
)
from shared.infra.runtime.service import Runtime, health_routes, running
from shared.infra.runtime.settings import Settings
from shared.infra.stream.partitions import Placement
from tests.conftest import as_service
from tests.support import streams
from tests.support.tokens import Signer


@pytest.fixture
async def svc(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Runtime]:
    own = as_service(settings, signer, "integration")
    rt = await build(own, schema=f"integration_{uuid.uuid4().hex[:8]}")
    for consumer in rt.consumers:
        await consumer.ensure_group()
    yield rt
    await rt.pool.close()
    await rt.redis.aclose()


async def drain(rt: Runtime) -> None:
    """Read what is new on every consumed stream as the service would, apply it, publish."""
    for consumer in rt.consumers:
        got = await streams.read_group(
            rt.redis, consumer.group, "svc-1", consumer.stream, count=500
        )
        if got:
            await consumer.handle(got)
    await rt.relay.publish_once()


async def read(redis: Redis, settings: Settings, stream: str) -> list[dict[str, str]]:
    found = await streams.entries(redis, settings.streams.key(stream))
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in found]


async def effects_of(redis: Redis, settings: Settings) -> list[dict[str, str]]:
    """The effects written for the account service, wherever they wait to be applied: its
    partitions (forwarded straight) or the public effects stream (the outbox's, routed
    later); in the order written (ids from one sequence, the router's and the forwarder's)."""
    key = settings.streams.key(ACCOUNT_EFFECTS)
    keys = [key, *Placement.of(settings.streams, key, settings.partitions).parts]
    found = [e for k in keys for e in await streams.entries(redis, k)]
    ordered = sorted(found, key=lambda e: tuple(int(n) for n in e[0].split(b"-")))
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in ordered]


def fill(account: str, **overrides: Any) -> dict[str, Any]:
    return {
        "fill_id": f"fill-{uuid.uuid4().hex}",
        "order_id": "ord-1",
        "account_id": account,
        "symbol": "TSLA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "250.00",
        "expiration": "2026-12-04",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 5,
        "price": "3.25",
        "commission": "3.25",
        "filled_at": "2026-11-26T14:02:11Z",
        **overrides,
    }


CREDENTIALS: dict[str, Signer] = {}


@pytest.fixture(autouse=True)
def _credentials(signer: Signer) -> None:
    CREDENTIALS["signer"] = signer


async def xadd(redis: Redis, settings: Settings, stream: str, fields: dict[str, str]) -> None:
    """As each stream's writer does: an engine with its token, the account service signing."""
    signer = CREDENTIALS["signer"]
    if stream == ACCOUNT_EVENTS:
        fields = signer.sign("account", fields)
    elif stream in (WS2_EVENTS, WS4_EVENTS):
        fields = {"authorization": signer.bearer("trading_engine"), **fields}
    await streams.xadd(redis, settings.streams.key(stream), fields)


def a_monday() -> date:
    """A random Monday, so tests sharing a database never share a week."""
    day = date(2100, 1, 4) + timedelta(weeks=Random().randrange(300_000))
    return day


async def test_a_fill_becomes_an_effect_with_the_same_source_and_id(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    account, monday = str(uuid.uuid4()), a_monday()
    week = {"week_start": monday.isoformat(), "week_type": "P-EW", "confidence": "0.82"}
    await xadd(redis, settings, WS2_EVENTS, new_event("ws2.week.classified", "ws2/engine", week))
    thursday = f"{monday + timedelta(days=3)}T14:02:11Z"
    entry = new_event(
        "ws4.trade.filled",
        "ws4/gateway-1",
        fill(account, filled_at=thursday),
        subject=account,
        correlationid="corr-1",
        causationid="order-9",
    )
    await xadd(redis, settings, WS4_EVENTS, entry)
    await drain(svc)
    (effect,) = await effects_of(redis, settings)
    assert (effect["source"], effect["id"]) == ("ws4/gateway-1", entry["id"])
    assert effect["type"] == "alluse.effect.trade_filled" and effect["subject"] == account
    assert (effect["causationid"], effect["correlationid"]) == ("order-9", "corr-1")
    data = json.loads(effect["data"])
    assert data == {**json.loads(entry["data"]), "multiplier": 100, "week_type": "P-EW"}


async def test_the_same_entry_twice_forwards_the_same_effect(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    account = str(uuid.uuid4())
    entry = new_event("ws4.trade.filled", "ws4/gateway-1", fill(account))
    await xadd(redis, settings, WS4_EVENTS, entry)
    await xadd(redis, settings, WS4_EVENTS, entry)
    await drain(svc)
    effects = await effects_of(redis, settings)
    # Once in effect: both carry the upstream key, which the account service's inbox dedupes.
    assert {(e["source"], e["id"]) for e in effects} == {("ws4/gateway-1", entry["id"])}
    assert len({e["data"] for e in effects}) == 1
    # Forwarded straight (services/integration/forwarder.py): no inbox row here, the account
    # service's inbox is the one that dedupes.
    assert await svc.pool.fetchval("SELECT count(*) FROM inbox WHERE id = $1", entry["id"]) == 0


async def test_each_effect_type_is_forwarded(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    account = str(uuid.uuid4())
    upstream: list[tuple[str, str, dict[str, Any]]] = [
        (
            WS4_EVENTS,
            "ws4.option.assigned",
            {
                "assignment_id": "as-1",
                "account_id": account,
                "symbol": "TSLA",
                "option_type": "put",
                "strike": "250.00",
                "contracts": 2,
                "multiplier": 100,
            },
        ),
        (
            WS4_EVENTS,
            "ws4.account.valuation",
            {
                "account_id": account,
                "positions_market_value": "-1234.50",
                "as_of": "2026-11-27T21:00:00Z",
            },
        ),
        (
            WS2_EVENTS,
            "ws2.protocol.validated",
            {
                "account_id": account,
                "trade_ref": "fill-1",
                "compliant": False,
                "violations": ["entry outside Thursday"],
                "week_type": "C-RO",
            },
        ),
    ]
    for stream, type_, data in upstream:
        await xadd(redis, settings, stream, new_event(type_, "up/1", data, subject=account))
    await drain(svc)
    effects = {e["type"]: json.loads(e["data"]) for e in await effects_of(redis, settings)}
    assert set(effects) == {
        "alluse.effect.option_assigned",
        "alluse.effect.account_valuation",
        "alluse.effect.protocol_validated",
    }
    assert effects["alluse.effect.protocol_validated"]["week_type"] == "C-RO"  # WS2's own stands
    assert effects["alluse.effect.account_valuation"]["positions_market_value"] == "-1234.50"


async def test_week_classified_announces_week_changed(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    monday = a_monday()
    weeks = [(monday, "P-EW"), (monday + timedelta(weeks=1), "W-IDL"), (monday, "P-RO")]
    entries = []
    for start, code in weeks:
        data = {"week_start": start.isoformat(), "week_type": code, "confidence": "0.9"}
        entries.append(new_event("ws2.week.classified", "ws2/engine", data))
        await xadd(redis, settings, WS2_EVENTS, entries[-1])
    await drain(svc)
    announced = await read(redis, settings, ACCOUNT_LIFECYCLE)
    # The late re-classification of the earlier week is recorded, not announced.
    assert [json.loads(e["data"]) for e in announced] == [
        {
            "week_start": monday.isoformat(),
            "week_type": "P-EW",
            "confidence": "0.9",
            "previous_week_type": None,
        },
        {
            "week_start": (monday + timedelta(weeks=1)).isoformat(),
            "week_type": "W-IDL",
            "confidence": "0.9",
            "previous_week_type": "P-EW",
        },
    ]
    first = announced[0]
    assert first["type"] == "alluse.week.changed" and first["source"] == "alluse/integration"
    assert first["causationid"] == entries[0]["id"]
    assert first["dataschema"] == dataschema("alluse.week.changed")


async def test_account_events_are_republished_in_order_with_their_ids(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    accounts = [str(uuid.uuid4()), str(uuid.uuid4())]
    sent = []
    for i in range(20):
        account = accounts[i % 2]
        data = {
            "account_id": account,
            "balance": f"{i}.00",
            "available": "0.00",
            "cash_buffer": "0.00",
            "transaction": {"id": str(i), "type": "trade_premium", "amount": "1.00"},
        }
        sent.append(
            new_event(
                "alluse.account.balance_changed",
                "alluse/account-service",
                data,
                subject=account,
                causationid=f"fill-{i}",
                correlationid="corr",
            )
        )
        await xadd(redis, settings, ACCOUNT_EVENTS, sent[-1])
    await xadd(redis, settings, ACCOUNT_EVENTS, sent[3])  # redelivered by the account service
    await drain(svc)
    public = await read(redis, settings, ACCOUNT_LIFECYCLE)
    assert [e["id"] for e in public] == [e["id"] for e in sent] + [sent[3]["id"]]
    for out, original in zip(public, sent, strict=False):
        same = ("source", "type", "subject", "causationid", "correlationid")
        assert {k: out[k] for k in same} == {k: original[k] for k in same}
        assert json.loads(out["data"]) == json.loads(original["data"])
        assert out["dataschema"] == dataschema("alluse.account.balance_changed")
        LIFECYCLE_TYPES[out["type"]].model_validate_json(out["data"])


async def test_bad_payloads_are_rejected_on_the_lifecycle_stream(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    account = str(uuid.uuid4())
    bad = new_event(
        "ws4.trade.filled", "ws4/gateway-1", fill(account, quantity=-1), subject=account
    )
    unknown = new_event("ws4.trade.exploded", "ws4/gateway-1", {"x": 1})
    good = new_event("ws4.trade.filled", "ws4/gateway-1", fill(account))
    for entry in (bad, unknown, good):
        await xadd(redis, settings, WS4_EVENTS, entry)
    await drain(svc)
    rejected = await read(redis, settings, ACCOUNT_LIFECYCLE)
    # A type no token may send is refused before the batch's payloads are read: order differs.
    assert sorted((e["causationid"], json.loads(e["data"])["code"]) for e in rejected) == sorted(
        [
            (bad["id"], "invalid_payload"),
            (unknown["id"], "unknown_type"),
        ]
    )
    (invalid,) = [e for e in rejected if e["causationid"] == bad["id"]]
    assert "quantity" in json.loads(invalid["data"])["reason"]
    assert invalid["subject"] == account
    # Both kinds of refusal name their schema, as the account service's rejections do.
    assert {e["dataschema"] for e in rejected} == {dataschema("alluse.command.rejected")}
    assert [e["id"] for e in await effects_of(redis, settings)] == [good["id"]]


async def test_unparseable_and_huge_entries_go_to_the_dlq(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    account = str(uuid.uuid4())
    await xadd(
        redis,
        settings,
        WS4_EVENTS,
        {**new_event("ws4.trade.filled", "g", fill(account)), "data": "nope"},
    )
    await xadd(
        redis,
        settings,
        WS4_EVENTS,
        new_event("ws4.trade.filled", "g", fill(account, order_id="x" * 2**20)),
    )
    good = new_event("ws4.trade.filled", "g", fill(account))
    await xadd(redis, settings, WS4_EVENTS, good)
    await drain(svc)
    dead = await streams.entries(redis, settings.streams.dlq(WS4_EVENTS))
    assert [b"not JSON" in f[b"dlq_reason"] or b"exceeds" in f[b"dlq_reason"] for _, f in dead] == [
        True,
        True,
    ]
    assert [e["id"] for e in await effects_of(redis, settings)] == [good["id"]]
    ws4 = settings.streams.key(WS4_EVENTS)
    assert (await redis.xpending(ws4, "integration"))["pending"] == 0


async def test_quotes_keep_the_latest_per_symbol(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    symbol = f"S{uuid.uuid4().hex[:6]}".upper()
    for as_of, last in (("2026-11-27T15:00:00Z", "10.5"), ("2026-11-27T14:00:00Z", "9.0")):
        quote = {"symbol": symbol, "bid": "10.00", "ask": "11.00", "last": last, "as_of": as_of}
        await xadd(redis, settings, WS4_EVENTS, new_event("ws4.market.quote", "ws4/md", quote))
    await drain(svc)
    assert (
        str(await svc.pool.fetchval("SELECT last FROM quotes WHERE symbol = $1", symbol))
        == "10.5000"
    )


async def test_readyz_reports_upstream_last_seen_and_metrics_the_lag(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    source = f"ws4/gw-{uuid.uuid4().hex[:6]}"
    await xadd(redis, settings, WS4_EVENTS, new_event("ws4.trade.filled", source, fill("a")))
    await drain(svc)
    await xadd(redis, settings, WS4_EVENTS, new_event("ws4.trade.filled", source, fill("a")))
    ws4 = next(c for c in svc.consumers if c.stream == settings.streams.key(WS4_EVENTS))
    await ws4.observe()
    assert REGISTRY.get_sample_value("alluse_stream_lag", {"stream": ws4.stream}) == 1
    assert REGISTRY.get_sample_value("alluse_stream_pending", {"stream": ws4.stream}) == 0
    app = Starlette(routes=health_routes(svc))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        ready = (await http.get("/readyz")).json()
        metrics = (await http.get("/metrics")).text
    assert ready["status"] == "ok" and source in ready["upstream"]
    assert f'alluse_upstream_last_seen_seconds{{source="{source}"}}' in metrics


async def test_the_running_service_forwards_and_republishes(
    svc: Runtime, redis: Redis, settings: Settings
) -> None:
    """The live path: FastStream subscribers, the relay woken after each commit."""
    account = str(uuid.uuid4())
    entry = new_event("ws4.trade.filled", "ws4/gateway-1", fill(account))
    event = new_event("alluse.account.closed", "alluse/account-service", {"account_id": account})
    key = settings.streams.key(ACCOUNT_EFFECTS)
    placement = Placement.of(settings.streams, key, settings.partitions)
    await redis.set(placement.count_key, settings.partitions)  # as the account's router says
    async with running(svc):
        await xadd(redis, settings, WS4_EVENTS, entry)
        await xadd(redis, settings, ACCOUNT_EVENTS, event)
        # Straight into the account service's partition of its account (nothing waits to be
        # routed on the public effects stream).
        effects = await follow(redis, *placement.parts)
        public = await follow(redis, settings.streams.key(ACCOUNT_LIFECYCLE))
    assert effects[b"id"] == entry["id"].encode() and public[b"id"] == event["id"].encode()


async def follow(redis: Redis, *keys: str) -> dict[bytes, bytes]:
    """The first entry of the streams `keys`, waiting for it with XREAD BLOCK (10 s at most)."""
    for _ in range(10):
        if reply := await streams.read(redis, dict.fromkeys(keys, "0"), count=1, block=1000):
            return dict(reply[0][1][0][1])
    raise AssertionError(f"nothing on {keys} after 10 s")
