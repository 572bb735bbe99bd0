"""docs/rules.md section 11 through the account service: positions, value from marks, sizing, as-of,
reversals."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import build
from services.account.state.store import reads
from shared.infra.runtime.db import connection
from shared.infra.runtime.service import Runtime, running
from shared.infra.runtime.settings import Settings
from tests.support.account import Client, assert_ledger_balanced, rejection
from tests.support.tokens import Signer
from tests.support.waiting import until

START = "2026-11-02T14:00:00Z"  # the system is funded then; every step below is dated after it
PUT = "AAPL  261120P00183000"
CALL = "AAPL  261127C00185000"


@pytest.fixture
async def svc(
    settings: Settings, redis: Redis, signer: Signer
) -> AsyncIterator[tuple[Client, Runtime]]:
    rt = await build(settings)
    async with running(rt):
        yield Client(redis, settings, signer), rt
        await assert_ledger_balanced(rt)


async def generation(client: Client) -> str:
    (event, *_) = await client.command(
        "alluse.system.initialize", {"total_capital": "250000.00"}, want=4, time=START
    )
    return str(next(a["id"] for a in event["data"]["accounts"] if a["type"] == "generation"))


def fresh_symbol() -> tuple[str, str]:
    """A ticker of the test's own (quotes are shared by every account), and its put's OCC key."""
    symbol = "Z" + uuid.uuid4().hex[:4].upper()
    return symbol, f"{symbol:<6}261120P00183000"


def option_fill(account: str, at: str, **over: Any) -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex,
        "order_id": "o-1",
        "account_id": account,
        "symbol": "AAPL",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "183",
        "expiration": "2026-11-20",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 4,
        "price": "2.10",
        "multiplier": 100,
        "commission": "2.60",
        "filled_at": at,
        **over,
    }


THURSDAY = "2026-11-19T15:00:00Z"


async def sold_put(client: Client) -> tuple[str, str, list[dict[str, Any]]]:
    """A Gen-Acc that sold 4 puts of a ticker of its own: (account, OCC key, the fill's events)."""
    symbol, put = fresh_symbol()
    gen = await generation(client)
    fill = option_fill(gen, THURSDAY, symbol=symbol)
    return gen, put, await client.effect("trade_filled", fill, want=2, time=THURSDAY)


def by_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == f"alluse.account.{kind}"]


def positions(client: Client, account: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def ask() -> dict[str, Any]:
        answer: dict[str, Any] = (
            await client.query("alluse.query.positions", {"account_id": account})
        )["data"]
        return answer

    return ask


async def quote(client: Client, symbol: str, bid: str, ask: str, last: str, at: str) -> None:
    data = {"symbol": symbol, "bid": bid, "ask": ask, "last": last, "as_of": at}
    assert await client.effect("market_quote", data, want=0, time=at) == []


def held(view: dict[str, Any]) -> dict[str, tuple[int, str, str]]:
    return {p["contract"]: (p["quantity"], p["cost"], p["market_value"]) for p in view["positions"]}


async def test_rule_11_put_sold_assigned_calls_sold_called_away_to_the_cent(
    svc: tuple[Client, Runtime],
) -> None:
    client, _ = svc
    gen = await generation(client)
    seen: list[tuple[str, dict[str, Any]]] = []
    ask = positions(client, gen)

    at = "2026-11-19T15:00:00Z"  # Thursday: sell 4 puts, 73,200 at risk (within 90 % of value)
    events = await client.effect("trade_filled", option_fill(gen, at), want=2, time=at)
    assert by_type(events, "balance_changed")[0]["balance"] == "100837.40"
    (moved,) = by_type(events, "position_changed")
    assert (moved["contract"], moved["quantity"], moved["cost"]) == (PUT, -4, "-840.00")
    view = await ask()
    assert (view["cash"], view["value"]) == ("100837.40", "99997.40")  # the option at cost
    seen.append((at, view))

    at = "2026-11-20T20:00:00Z"  # Friday close: AAPL 178, the put at its 5.00 intrinsic value
    await quote(client, PUT, "4.90", "5.10", "5.00", at)
    await quote(client, "AAPL", "177.90", "178.10", "178.00", at)
    view = await until(ask, lambda v: v["value"] == "98837.40")
    assert held(view) == {PUT: (-4, "-840.00", "-2000.00")}
    seen.append((at, view))

    at = "2026-11-20T21:30:00Z"  # assigned: 73,200 debited, 400 shares at the 183 strike
    assignment = {
        "assignment_id": "asg-1",
        "account_id": gen,
        "symbol": "AAPL",
        "option_type": "put",
        "strike": "183",
        "contracts": 4,
        "multiplier": 100,
    }
    events = await client.effect("option_assigned", assignment, want=3, time=at)
    assert by_type(events, "balance_changed")[0]["balance"] == "27637.40"
    assert not by_type(events, "drawdown_breached")  # an assignment alone is no loss
    view = await ask()
    assert held(view) == {"AAPL": (400, "73200.00", "71200.00")}
    assert (view["cash"], view["value"]) == ("27637.40", "98837.40")
    seen.append((at, view))

    at = "2026-11-26T15:00:00Z"  # covered calls on the shares
    call = option_fill(
        gen,
        at,
        option_type="call",
        strike="185",
        expiration="2026-11-27",
        delta="0.45",
        price="1.50",
    )
    events = await client.effect("trade_filled", call, want=2, time=at)
    assert by_type(events, "balance_changed")[0]["balance"] == "28234.80"
    view = await ask()
    assert held(view) == {"AAPL": (400, "73200.00", "71200.00"), CALL: (-4, "-600.00", "-600.00")}
    assert view["value"] == "98834.80"
    seen.append((at, view))

    at = "2026-11-27T20:00:00Z"
    await quote(client, "AAPL", "185.90", "186.10", "186.00", at)
    await quote(client, CALL, "0.95", "1.05", "1.00", at)
    view = await until(ask, lambda v: v["value"] == "102234.80")
    seen.append((at, view))

    at = "2026-11-27T21:30:00Z"  # called away: 74,000 credited, shares delivered
    called = {**assignment, "assignment_id": "asg-2", "option_type": "call", "strike": "185"}
    events = await client.effect("option_assigned", called, want=3, time=at)
    assert by_type(events, "balance_changed")[0]["balance"] == "102234.80"
    assert {(p["contract"], p["quantity"]) for p in by_type(events, "position_changed")} == {
        (CALL, 0),
        ("AAPL", 0),
    }
    view = await ask()
    assert (view["positions"], view["cash"], view["value"]) == ([], "102234.80", "102234.80")
    seen.append((at, view))

    # As of each step, the account as it showed then: from the ledger and position history.
    for when, shown in seen:
        then = await client.query(
            "alluse.query.as_of", {"account_id": gen, "at": when}, role="operator"
        )
        then = then["data"]
        assert (then["cash"], then["positions"], then["value"]) == (
            shown["cash"],
            shown["positions"],
            shown["value"],
        ), when
    integrity = (await client.query("alluse.query.integrity", {}))["data"]
    assert integrity["ok"]


async def test_rule_11_expiration_closes_the_position_and_closing_more_is_refused(
    svc: tuple[Client, Runtime],
) -> None:
    symbol, put = fresh_symbol()
    client, _ = svc
    gen = await generation(client)
    at = "2026-11-19T15:00:00Z"
    await client.effect(
        "trade_filled",
        option_fill(gen, at, symbol=symbol, quantity=2, price="1.00"),
        want=2,
        time=at,
    )
    balance = (await positions(client, gen)())["cash"]
    close = option_fill(gen, at, symbol=symbol, side="buy_to_close", quantity=3, price="0.20")
    assert rejection(await client.effect("trade_filled", close))["code"] == "position_not_open"
    expired = {
        "expiration_id": "exp-1",
        "account_id": gen,
        "symbol": symbol,
        "option_type": "put",
        "strike": "183",
        "expiration": "2026-11-20",
        "contracts": 3,
    }
    assert rejection(await client.effect("option_expired", expired))["code"] == "position_not_open"
    assignment = {
        "assignment_id": "asg-9",
        "account_id": gen,
        "symbol": symbol,
        "option_type": "put",
        "strike": "150",
        "contracts": 1,
        "multiplier": 100,
    }
    assert (
        rejection(await client.effect("option_assigned", assignment))["code"] == "position_not_open"
    )
    view = await positions(client, gen)()
    assert view["cash"] == balance and held(view) == {put: (-2, "-200.00", "-200.00")}

    (gone,) = await client.effect("option_expired", {**expired, "contracts": 2})
    assert (gone["data"]["quantity"], gone["data"]["cause"]) == (0, "expiration")
    view = await positions(client, gen)()
    assert (view["positions"], view["cash"], view["value"]) == ([], balance, balance)
    assert await client.effect("option_expired", {**expired, "contracts": 2}, want=0) == []  # again


async def test_rule_11_position_sizing_breach_is_recorded_and_announced(
    svc: tuple[Client, Runtime],
) -> None:
    symbol, _ = fresh_symbol()
    client, _ = svc
    gen = await generation(client)  # 100,000.00: 5 puts at 183 would cost 91,500 > 90,000
    at = "2026-11-19T15:00:00Z"
    events = await client.effect(
        "trade_filled", option_fill(gen, at, symbol=symbol, quantity=5), want=3, time=at
    )
    (violation,) = by_type(events, "protocol_violation")
    assert violation["violations"][0].startswith("position_sizing")
    assert violation["adherence_score"] == "95.00"
    assert by_type(events, "balance_changed")[0]["balance"] == "101047.40"  # the money still moves


async def test_rule_11_broker_valuation_is_compared_with_own_marks(
    svc: tuple[Client, Runtime],
) -> None:
    client, _ = svc
    gen, _, _ = await sold_put(client)
    valuation = {"account_id": gen, "positions_market_value": "-900.00", "as_of": THURSDAY}
    assert await client.effect("account_valuation", valuation, want=0) == []  # 60 within 499.99
    (found,) = await client.effect(
        "account_valuation", {**valuation, "positions_market_value": "-2000.00"}
    )
    assert found["type"] == "alluse.account.valuation_mismatch"
    assert (found["data"]["own_positions_value"], found["data"]["difference"]) == (
        "-840.00",
        "-1160.00",
    )


async def test_rule_11_a_quote_revalues_its_holders_at_once_and_drawdown_runs_on_it(
    svc: tuple[Client, Runtime],
) -> None:
    client, rt = svc
    gen, put, _ = await sold_put(client)
    at = "2026-11-20T20:00:00Z"  # a crash: the 4 puts sold at 2.10 are quoted at 40.00
    crash = {"symbol": put, "bid": "39.90", "ask": "40.10", "last": "40.00", "as_of": at}
    (breach,) = await client.effect("market_quote", crash, time=at)
    assert breach["type"] == "alluse.account.drawdown_breached" and breach["subject"] == gen
    assert (breach["data"]["total_value"], breach["data"]["drawdown_pct"]) == ("84837.40", "15.16")
    later = {**crash, "ask": "40.30", "as_of": "2026-11-20T20:30:00Z"}
    assert await client.effect("market_quote", later, want=0, time=later["as_of"]) == []  # once

    async def marked_by_quotes() -> dict[str, Any]:
        async with connection(rt.pool) as conn:
            rows = await conn.fetch(
                "SELECT positions_value FROM account_values WHERE account_id = $1 AND by_quote",
                uuid.UUID(gen),
            )
        return {"points": [str(r["positions_value"]) for r in rows]}

    # The day keeps its last quote-driven value point only: the books grow by one a day.
    points = await until(marked_by_quotes, lambda v: v["points"] == ["-16040.00"])
    assert points["points"] == ["-16040.00"]
    valuation = {"account_id": gen, "positions_market_value": "-16040.00", "as_of": at}
    assert await client.effect("account_valuation", valuation, want=0) == []  # the same marks


async def test_rule_11_reversal_books_the_opposite_entry_once(
    svc: tuple[Client, Runtime],
) -> None:
    client, _ = svc
    gen = await generation(client)
    (deposit,) = await client.command(
        "alluse.account.deposit", {"account_id": gen, "amount": "1000.00"}
    )
    tx = deposit["data"]["transaction"]["id"]
    reverse = {"transaction_id": int(tx), "reason": "wired to the wrong account"}
    events = await client.command("alluse.account.reverse", reverse, role="operator", want=2)
    (changed,) = by_type(events, "balance_changed")
    assert (changed["balance"], changed["transaction"]["amount"]) == ("100000.00", "-1000.00")
    (reversed_,) = by_type(events, "reversed")
    assert (reversed_["reverses"], reversed_["reason"]) == (tx, "wired to the wrong account")
    history = (await client.query("alluse.query.history", {"account_id": gen}))["data"]
    assert history["transactions"][0]["reverses"] == tx  # the new row names the original

    refused = {
        "already_reversed": reverse,
        "reversal_not_reversible": {**reverse, "transaction_id": int(reversed_["transaction_id"])},
        "unknown_transaction": {**reverse, "transaction_id": 999_999_999},
    }
    for code, data in refused.items():
        got = await client.command("alluse.account.reverse", data, role="operator")
        assert rejection(got)["code"] == code
    viewer = await client.command("alluse.account.reverse", reverse, role="viewer")
    assert rejection(viewer)["code"] == "forbidden"


async def test_rule_11_reversing_a_fill_undoes_its_position_and_a_fork_transfer_is_refused(
    svc: tuple[Client, Runtime],
) -> None:
    client, _ = svc
    gen, _, events = await sold_put(client)
    tx = int(by_type(events, "balance_changed")[0]["transaction"]["id"])
    reverse = {"transaction_id": tx, "reason": "fill booked twice at the broker"}
    events = await client.command("alluse.account.reverse", reverse, role="operator", want=3)
    assert by_type(events, "position_changed")[0]["quantity"] == 0
    view = await positions(client, gen)()
    assert (view["positions"], view["cash"]) == ([], "100000.00")

    # A big premium takes the Gen-Acc past its fork threshold: the fork's transfer stays.
    big = option_fill(gen, THURSDAY, symbol="NVDA", strike="1", quantity=100, price="5.01")
    events = await client.effect("trade_filled", big, want=2, time=THURSDAY)
    history = await client.query(
        "alluse.query.history", {"account_id": gen, "type": "fork_transfer"}
    )
    (transfer,) = history["data"]["transactions"]
    got = await client.command(
        "alluse.account.reverse",
        {**reverse, "transaction_id": int(transfer["id"])},
        role="operator",
    )
    assert rejection(got)["code"] == "transfer_not_reversible"


async def test_integrity_checks_positions_against_their_history(
    svc: tuple[Client, Runtime],
) -> None:
    client, rt = svc
    gen, put, _ = await sold_put(client)
    report = (await client.query("alluse.query.integrity", {}))["data"]
    assert report["ok"] and report["positions_checked"] >= 1
    async with connection(rt.pool) as conn:
        await conn.execute("UPDATE positions SET quantity = -5 WHERE contract = $1", put)
    report = (await client.query("alluse.query.integrity", {}))["data"]
    assert not report["ok"]
    (bad,) = [m for m in report["position_mismatches"] if m["account_id"] == gen]
    assert (bad["quantity"], bad["history_quantity"]) == ("-5", "-4")
    async with connection(rt.pool) as conn:  # put back, for the ledger check after the test
        await conn.execute("UPDATE positions SET quantity = -4 WHERE contract = $1", put)


async def test_rule_11_as_of_follows_business_time_when_entries_arrive_out_of_order(
    svc: tuple[Client, Runtime],
) -> None:
    client, rt = svc
    symbol, put = fresh_symbol()
    gen = await generation(client)

    async def as_of(at: str) -> dict[str, Any]:
        query = {"account_id": gen, "at": at}
        answer: dict[str, Any] = (await client.query("alluse.query.as_of", query, role="operator"))[
            "data"
        ]
        return answer

    opening = (await as_of("2026-11-03T08:00:00Z"))["cash"]
    assert opening == "100000.00"
    for amount, at in (("100.00", "2026-11-03T10:00:00Z"), ("50.00", "2026-11-03T09:00:00Z")):
        deposit = {"account_id": gen, "amount": amount}
        await client.command("alluse.account.deposit", deposit, time=at)
    # The 50 arrived second but is dated 09:00: at 09:30 the account held 100,050.
    assert (await as_of("2026-11-03T09:30:00Z"))["cash"] == "100050.00"
    assert (await as_of("2026-11-03T10:30:00Z"))["cash"] == "100150.00"
    # The series the metrics and the growth chart are drawn from follows business time too.
    async with connection(rt.pool) as conn:
        series = await reads.balance_series(conn, account_ids=[uuid.UUID(gen)])
    assert [str(r["balance_after"]) for r in series] == ["100000.00", "100050.00", "100150.00"]

    # Positions likewise: 4 puts sold at 15:00, then 2 more arriving later dated 14:00.
    for quantity, at in ((4, "2026-11-19T15:00:00Z"), (2, "2026-11-19T14:00:00Z")):
        fill = option_fill(gen, at, symbol=symbol, quantity=quantity, price="1.00")
        await client.effect("trade_filled", fill, want=2, time=at)
    assert held(await as_of("2026-11-19T14:30:00Z")) == {put: (-2, "-200.00", "-200.00")}
    assert held(await as_of("2026-11-19T15:30:00Z")) == {put: (-6, "-600.00", "-600.00")}
    assert (await client.query("alluse.query.integrity", {}))["data"]["ok"]


async def test_rule_11_an_assignment_takes_the_series_it_names_else_the_nearest(
    svc: tuple[Client, Runtime],
) -> None:
    client, _ = svc
    symbol, near = fresh_symbol()
    far = f"{symbol:<6}261127P00183000"
    gen = await generation(client)
    for expiration in ("2026-11-20", "2026-11-27"):
        fill = option_fill(gen, THURSDAY, symbol=symbol, quantity=1, expiration=expiration)
        await client.effect("trade_filled", fill, want=2, time=THURSDAY)
    assignment = {
        "assignment_id": uuid.uuid4().hex,
        "account_id": gen,
        "symbol": symbol,
        "option_type": "put",
        "strike": "183",
        "contracts": 1,
        "multiplier": 100,
        "expiration": "2026-11-27",
    }
    events = await client.effect("option_assigned", assignment, want=3, time=THURSDAY)
    assert {p["contract"] for p in by_type(events, "position_changed")} == {far, symbol}
    # Without the expiration (docs/contract.md makes it optional): the nearest series short.
    unnamed = {**assignment, "assignment_id": uuid.uuid4().hex}
    del unnamed["expiration"]
    events = await client.effect("option_assigned", unnamed, want=3, time=THURSDAY)
    assert {p["contract"] for p in by_type(events, "position_changed")} == {near, symbol}
    gone = {**assignment, "assignment_id": uuid.uuid4().hex}  # the far series is no longer short
    assert rejection(await client.effect("option_assigned", gone))["code"] == "position_not_open"
