"""docs/rules.md sections 4, 5 and 11 together, through the account service: a fork leaves the cash
short puts secure, a merge carries positions with the cash, a reversal is watched like any
change."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import build
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from tests.support.account import Client, assert_ledger_balanced, rejection
from tests.support.tokens import Signer

START = "2026-11-02T14:00:00Z"
THURSDAY = "2026-11-19T15:00:00Z"
FRIDAY_CLOSE = "2026-11-20T21:00:00Z"


@pytest.fixture
async def client(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Client]:
    rt: Runtime = await build(settings)
    async with running(rt):
        yield Client(redis, settings, signer)
        await assert_ledger_balanced(rt)


async def system(client: Client) -> dict[str, str]:
    (event, *_) = await client.command(
        "alluse.system.initialize", {"total_capital": "250000.00"}, want=4, time=START
    )
    return {a["type"]: a["id"] for a in event["data"]["accounts"]}


def ticker() -> str:
    return "Z" + uuid.uuid4().hex[:4].upper()  # quotes are shared: each test trades its own


def fill(account: str, at: str, **over: Any) -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex,
        "order_id": "o-1",
        "account_id": account,
        "symbol": ticker(),
        "instrument_type": "option",
        "option_type": "put",
        "strike": "183",
        "expiration": "2026-11-20",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 6,
        "price": "2.10",
        "multiplier": 100,
        "commission": "2.60",
        "filled_at": at,
        **over,
    }


def premium(account: str, at: str = THURSDAY, **over: Any) -> dict[str, Any]:
    """Puts of strike 1: premium with next to no collateral (100 x 1 x 100 = 10,000)."""
    return fill(account, at, **{"strike": "1", "quantity": 100, "price": "5.01", **over})


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].rsplit(".", 1)[1] for e in events]


def one(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [e["data"] for e in events if e["type"] == f"alluse.account.{kind}"]
    return found


async def positions(client: Client, account: str) -> dict[str, Any]:
    answer: dict[str, Any] = (
        await client.query("alluse.query.positions", {"account_id": account})
    )["data"]
    return answer


async def as_of(client: Client, account: str, at: str) -> dict[str, Any]:
    query = {"account_id": account, "at": at}
    answer: dict[str, Any] = (await client.query("alluse.query.as_of", query, role="operator"))[
        "data"
    ]
    return answer


def held(view: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {p["contract"]: (p["quantity"], p["cost"]) for p in view["positions"]}


async def test_rule_4_fork_waits_while_short_puts_secure_the_surplus(client: Client) -> None:
    gen = (await system(client))["generation"]
    puts = fill(gen, THURSDAY)  # 6 x 183: 109,800 secured, more than the 100,000 baseline
    await client.effect("trade_filled", puts, want=3, time=THURSDAY)  # + a sizing violation
    events = await client.effect("trade_filled", premium(gen), want=3, time=THURSDAY)
    # 151,354.80 cash: a surplus of 51,354.80, but only 31,554.80 of the cash is free.
    assert kinds(events) == ["balance_changed", "position_changed", "fork_eligible"]
    assert one(events, "fork_eligible")["surplus"] == "51354.80"
    refused = rejection(
        await client.command("alluse.account.fork", {"account_id": gen}, role="operator")
    )
    assert refused["code"] == "fork_collateral_locked"
    assert (await positions(client, gen))["cash"] == "151354.80"  # nothing moved

    # The 183 puts expire: the cash they secured is free, and the waiting fork goes.
    expired = {
        "expiration_id": uuid.uuid4().hex,
        "account_id": gen,
        "symbol": puts["symbol"],
        "option_type": "put",
        "strike": "183",
        "expiration": "2026-11-20",
        "contracts": 6,
    }
    events = await client.effect("option_expired", expired, want=7, time=FRIDAY_CLOSE)
    assert kinds(events)[0] == "position_changed" and kinds(events)[-1] == "forked"
    assert one(events, "forked")["surplus"] == "51354.80"
    assert (await positions(client, gen))["cash"] == "100000.00"


async def test_rule_5_merge_carries_positions_with_the_cash(client: Client) -> None:
    accounts = await system(client)
    gen, parent_com = accounts["generation"], accounts["compounding"]
    events = await client.effect("trade_filled", premium(gen), want=9, time=THURSDAY)
    forked = one(events, "forked")
    child_gen = forked["child_accounts"]["generation"]
    assert forked["to_generation"] == "25048.70"

    at = "2026-11-26T15:00:00Z"  # the child Gen-Acc sells a put and buys shares
    put = fill(child_gen, at, strike="50", quantity=2, price="1.20", expiration="2026-12-18")
    stock = fill(
        child_gen,
        at,
        instrument_type="stock",
        option_type=None,
        strike=None,
        expiration=None,
        delta=None,
        side="buy",
        quantity=100,
        price="40.00",
        multiplier=1,
        commission="1.00",
    )
    await client.effect("trade_filled", put, want=2, time=at)
    bought = await client.effect("trade_filled", stock, want=2, time=at)
    assert one(bought, "balance_changed")["transaction"]["type"] == "trade_shares"
    before = await positions(client, child_gen)
    put_key = f"{put['symbol']:<6}261218P00050000"
    assert held(before) == {stock["symbol"]: (100, "4000.00"), put_key: (-2, "-240.00")}
    assert before["cash"] == "21285.10"

    merge_at = "2026-11-27T15:00:00Z"
    events = await client.command(
        "alluse.account.merge",
        {"portfolio_id": forked["child_portfolio_id"]},
        role="operator",
        want=10,
        time=merge_at,
    )
    moved = [
        (e["account_id"], e["contract"], e["change"], e["quantity"], e["cost"], e["cause"])
        for e in (x["data"] for x in events)
        if "contract" in e
    ]
    assert sorted(moved) == sorted(
        [
            (child_gen, stock["symbol"], -100, 0, "0.00", "merge"),
            (child_gen, put_key, 2, 0, "0.00", "merge"),
            (parent_com, stock["symbol"], 100, 100, "4000.00", "merge"),
            (parent_com, put_key, -2, -2, "-240.00", "merge"),
        ]
    )
    assert one(events, "merged")["total"] == "46333.80"  # 21,285.10 + the child Com-Acc's 25,048.70

    target = await positions(client, parent_com)
    assert held(target) == {stock["symbol"]: (100, "4000.00"), put_key: (-2, "-240.00")}
    assert target["cash"] == "121333.80"
    assert target["value"] == "125093.80"  # positions at cost: 4,000 - 240
    gone = await positions(client, child_gen)
    assert (gone["positions"], gone["cash"], gone["value"]) == ([], "0.00", "0.00")

    # As of before the merge, each side as it was; after it, the positions are the target's.
    then = "2026-11-26T16:00:00Z"
    assert held(await as_of(client, child_gen, then)) == held(before)
    assert held(await as_of(client, parent_com, then)) == {}
    after = "2026-11-27T16:00:00Z"
    assert held(await as_of(client, child_gen, after)) == {}
    assert held(await as_of(client, parent_com, after)) == held(target)
    assert (await as_of(client, parent_com, after))["value"] == "125093.80"
    integrity = (await client.query("alluse.query.integrity", {}))["data"]
    assert integrity["ok"]
    metrics = (await client.query("alluse.query.metrics", {"account_id": parent_com}))["data"]
    assert metrics["total_return"] == "0.00"  # what a merge brings in is capital, not return


async def test_rule_4_a_reversal_that_lifts_the_surplus_over_the_threshold_forks(
    client: Client,
) -> None:
    gen = (await system(client))["generation"]
    sold = premium(gen, price="4.90")  # +48,997.40
    await client.effect("trade_filled", sold, want=2, time=THURSDAY)
    close = {
        **sold,
        "fill_id": uuid.uuid4().hex,
        "side": "buy_to_close",
        "quantity": 10,
        "price": "1.50",
    }
    events = await client.effect("trade_filled", close, want=2, time=THURSDAY)  # -1,502.60
    tx = int(one(events, "balance_changed")["transaction"]["id"])
    again = {**sold, "fill_id": uuid.uuid4().hex, "quantity": 10, "price": "2.00"}  # +1,997.40
    events = await client.effect("trade_filled", again, want=2, time=THURSDAY)
    assert one(events, "balance_changed")["balance"] == "149492.20"  # a surplus of 49,492.20

    reverse = {"transaction_id": tx, "reason": "the close was the broker's error"}
    events = await client.command("alluse.account.reverse", reverse, role="operator", want=10)
    assert kinds(events)[:4] == ["balance_changed", "position_changed", "reversed", "fork_eligible"]
    assert one(events, "forked")["surplus"] == "50994.80"


async def test_rule_4_a_reversal_that_takes_the_surplus_under_the_threshold_unflags_it(
    client: Client,
) -> None:
    gen = (await system(client))["generation"]
    await client.effect("trade_filled", fill(gen, THURSDAY), want=3, time=THURSDAY)  # locks it
    events = await client.effect("trade_filled", premium(gen), want=3, time=THURSDAY)
    assert kinds(events)[-1] == "fork_eligible"
    tx = int(one(events, "balance_changed")["transaction"]["id"])

    reverse = {"transaction_id": tx, "reason": "booked to the wrong account"}
    events = await client.command("alluse.account.reverse", reverse, role="operator", want=3)
    assert "fork_eligible" not in kinds(events)
    # Under the threshold again: the next crossing is announced as a new one.
    events = await client.effect("trade_filled", premium(gen), want=3, time=THURSDAY)
    assert kinds(events) == ["balance_changed", "position_changed", "fork_eligible"]
