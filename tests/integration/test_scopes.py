"""Scoped tokens through the three services (docs/scopes.md): least privilege by role, and
portfolio scopes on commands, queries and upstream entries, each refusal audited.

Plain redis-py writers with tokens of the stand-in JWKS: the security service's own issuing
of the claim is tested beside its grants (test_security_scopes.py).
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.contracts.streams import (
    ACCOUNT_QUERIES,
    AUDIT,
    WS2_EVENTS,
    WS4_EVENTS,
)
from shared.contracts.trust import reply_namespace
from shared.infra.runtime.settings import Settings
from tests.support.account import rejection
from tests.support.platform import Platform, platform
from tests.support.streams import ce, decoded, entries, outcomes, reply
from tests.support.tokens import Signer


@pytest.fixture
async def run(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Platform]:
    async with platform(settings, redis, signer) as p:
        yield p


async def portfolio_of(p: Platform, account_id: str) -> str:
    found = await p.client.query("alluse.query.account", {"account_id": account_id})
    return str(found["data"]["portfolio_id"])


async def second_portfolio(p: Platform) -> dict[str, dict[str, Any]]:
    return await p.client.initialize("100000.00", template="moderate")


async def ask(
    redis: Redis,
    s: Settings,
    signer: Signer,
    type_: str,
    data: dict[str, Any],
    *,
    role: str,
    sub: str,
    portfolios: list[str],
    subject: str | None = None,
) -> dict[str, Any]:
    """A query with a token of `role` for `sub` scoped to `portfolios`; its answer."""
    box = reply_namespace(s.streams.prefix, sub) + uuid.uuid4().hex
    token = signer.bearer(role, sub=sub, portfolios=portfolios)
    attrs = {"subject": subject} if subject else {}
    fields = ce(type_, data, authorization=token, replyto=box, **attrs)
    await redis.xadd(s.streams.key(ACCOUNT_QUERIES), fields)  # type: ignore[arg-type]
    return await reply(redis, box)


def fill(account_id: str) -> dict[str, Any]:
    return {
        "fill_id": f"fill-{uuid.uuid4().hex}",
        "order_id": "o-1",
        "account_id": account_id,
        "symbol": "TSLA",
        "instrument_type": "stock",
        "side": "buy",
        "quantity": 1,
        "price": "10.00",
        "commission": "1.00",
        "filled_at": "2026-11-26T14:02:11Z",
    }


async def denied_audit(redis: Redis, s: Settings, cause_id: str) -> list[dict[str, Any]]:
    """The audit record of an entry refused before its batch (it claims no key)."""
    records = await outcomes(redis, s.streams.key(AUDIT), cause_id, want=1)
    return [r for r in records if r["data"]["action"] == "command.denied"]


async def test_a_trading_engine_cannot_withdraw_or_deposit_by_command(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    """Finding 5: an engine's token withdrew 25,000.00 from an account it has nothing to do
    with. An engine publishes upstream events; moving money by command is not its to do."""
    for kind in ("withdraw", "deposit"):
        got = rejection(
            await run.client.command(
                f"alluse.account.{kind}",
                {"amount": "25000.00"},
                role="trading_engine",
                subject=run.account,
            )
        )
        assert got["code"] == "forbidden", got
    balance = await run.client.query("alluse.query.account", {"account_id": run.account})
    assert balance["data"]["balance"] == "100000.00"  # the moderate Gen-Acc, untouched


async def test_an_engine_scoped_to_one_portfolio_books_fills_there_only(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    s = settings.streams
    mine = await portfolio_of(run, run.account)
    other = (await second_portfolio(run))["generation"]["id"]
    engine = signer.bearer("trading_engine", sub="engine-a", portfolios=[mine])

    foreign = ce("ws4.trade.filled", fill(other), source="ws4/engine-a", authorization=engine)
    await redis.xadd(s.key(WS4_EVENTS), foreign)  # type: ignore[arg-type]
    (refused,) = await outcomes(redis, run.client.events, foreign["id"])
    assert refused["type"] == "alluse.command.rejected"
    assert refused["data"]["code"] == "forbidden", refused
    (record,) = await denied_audit(redis, settings, foreign["id"])
    assert record["data"]["details"]["source"] == "ws4/engine-a"
    assert record["data"]["details"]["code"] == "forbidden"
    assert record["data"]["details"]["writer"].endswith("client:engine-a")  # the engine behind
    assert record["data"]["subject"] == other

    own = ce("ws4.trade.filled", fill(run.account), source="ws4/engine-a", authorization=engine)
    await redis.xadd(s.key(WS4_EVENTS), own)  # type: ignore[arg-type]
    booked = await outcomes(redis, run.client.events, own["id"], want=2)
    assert "alluse.command.rejected" not in {e["type"] for e in booked}, booked
    untouched = await run.client.query("alluse.query.account", {"account_id": other})
    assert untouched["data"]["balance"] == "40000.00"  # the fill's 11.00 never left it


async def test_a_scoped_engine_may_not_publish_what_concerns_every_portfolio(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    """A week's classification and a quote reach every portfolio: the whole platform's scope."""
    s = settings.streams
    engine = signer.bearer(
        "trading_engine", sub="engine-a", portfolios=[await portfolio_of(run, run.account)]
    )
    week = ce(
        "ws2.week.classified",
        {"week_start": "2026-11-23", "week_type": "P-EW", "confidence": "0.80"},
        source="ws2/engine-a",
        authorization=engine,
    )
    await redis.xadd(s.key(WS2_EVENTS), week)  # type: ignore[arg-type]
    (refused,) = await outcomes(redis, run.client.events, week["id"])
    assert refused["data"]["code"] == "forbidden", refused


async def test_a_viewer_scoped_to_portfolio_a_cannot_read_b(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    a = await portfolio_of(run, run.account)
    b_accounts = await second_portfolio(run)
    b_account = b_accounts["generation"]["id"]
    b = await portfolio_of(run, b_account)

    async def viewer(type_: str, data: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return await ask(
            redis, settings, signer, type_, data, role="viewer", sub="vera", portfolios=[a], **kw
        )

    own = await viewer("alluse.query.account", {"account_id": run.account})
    assert own["type"] == "alluse.query.result" and own["data"]["id"] == run.account
    for type_, data in (
        ("alluse.query.account", {"account_id": b_account}),
        ("alluse.query.history", {"account_id": b_account}),
        ("alluse.query.positions", {"account_id": b_account}),
        ("alluse.query.tree", {"portfolio_id": b}),
        ("alluse.query.accounts", {"portfolio_id": b}),
        ("alluse.query.integrity", {}),
    ):
        got = await viewer(type_, data)
        assert got["type"] == "alluse.query.failed", (type_, got)
        assert got["data"]["code"] == "forbidden", (type_, got)
    # An unknown account looks like a foreign one: nothing learnt about what exists.
    unknown = await viewer("alluse.query.account", {"account_id": str(uuid.uuid4())})
    assert unknown["data"]["code"] == "forbidden"

    listed = await viewer("alluse.query.accounts", {})
    assert {x["portfolio_id"] for x in listed["data"]["accounts"]} == {a}
    totals = await viewer("alluse.query.summary", {})
    assert totals["data"]["portfolios"] == 1
    assert totals["data"]["total_balance"] == "250000.00"  # A's only, not A's and B's

    denied = [
        decoded(f)
        for _, f in await entries(redis, settings.streams.key(AUDIT))
        if b"scope.denied" in f[b"data"]
    ]
    assert len(denied) >= 7 and {d["data"]["actor"] for d in denied} == {"vera"}


async def test_a_viewer_without_a_grant_reads_nothing_and_an_operator_everything(
    run: Platform, redis: Redis, settings: Settings, signer: Signer
) -> None:
    nothing = await ask(
        redis,
        settings,
        signer,
        "alluse.query.account",
        {"account_id": run.account},
        role="viewer",
        sub="nobody",
        portfolios=[],
    )
    assert nothing["data"]["code"] == "forbidden"
    listed = await ask(
        redis,
        settings,
        signer,
        "alluse.query.accounts",
        {},
        role="viewer",
        sub="nobody",
        portfolios=[],
    )
    assert listed["data"]["accounts"] == []
    # Operators hold the whole platform by role, whatever their token's claim says.
    ops = await ask(
        redis,
        settings,
        signer,
        "alluse.query.integrity",
        {},
        role="operator",
        sub="otto",
        portfolios=[],
    )
    assert ops["type"] == "alluse.query.result" and ops["data"]["ok"] is True
