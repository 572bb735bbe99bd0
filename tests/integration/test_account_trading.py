"""Sections 8-9 in the account service: effects of WS4/WS2 events as the integration service forwards them."""

import uuid
from typing import Any

import pytest

from shared.contracts.streams import ACCOUNT_EFFECTS, ACCOUNT_EVENTS
from tests.support.account import Client, rejection
from tests.support.streams import ce, outcomes

THURSDAY = "2026-11-26T15:00:00Z"
MONDAY = "2026-11-23T15:00:00Z"


async def effect(
    client: Client, type_: str, data: dict[str, Any], *, want: int = 1, id_: str | None = None
) -> list[dict[str, Any]]:
    fields = ce(
        f"alluse.effect.{type_}",
        data,
        source="ws4/gateway-1",
        id_=id_,
        subject=data.get("account_id", ""),
    )
    await client.redis.xadd(client.s.key(ACCOUNT_EFFECTS), fields)
    return await outcomes(
        client.redis,
        client.s.key(ACCOUNT_EVENTS),
        fields["id"],
        want=want,
        timeout=5 if want else 0.5,
    )


def fill(account_id: str, **over: Any) -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex, "order_id": "o-1", "account_id": account_id, "symbol": "NVDA",
        "instrument_type": "option", "option_type": "put", "strike": "120.00", "expiration": "2026-12-04",
        "delta": "-0.45", "side": "sell_to_open", "quantity": 2, "price": "3.50", "multiplier": 100,
        "commission": "1.30", "filled_at": THURSDAY, "week_type": "P-EW", **over,
    }  # fmt: skip


async def test_rule_9_selling_to_open_credits_premium_less_commission(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    (event,) = await effect(client, "trade_filled", fill(gen["id"]))
    assert event["data"]["transaction"]["amount"] == "698.70"  # 2 x 3.50 x 100 - 1.30
    assert event["data"]["transaction"]["type"] == "trade_premium"
    assert event["data"]["transaction"]["week_type"] == "P-EW"  # trades are tagged with the week
    assert event["data"]["balance"] == "100698.70"
    assert event["causationid"] == event["correlationid"]


async def test_rule_9_buying_to_close_debits_price_and_commission(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    (event,) = await effect(
        client, "trade_filled", fill(gen["id"], side="buy_to_close", price="0.25", filled_at=MONDAY)
    )
    assert (
        event["data"]["transaction"]["amount"] == "-51.30"
    )  # closing trades are free of entry-day rules


async def test_rule_9_put_assignment_debits_strike_times_contracts(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    data = {"assignment_id": "a-1", "account_id": gen["id"], "symbol": "AMD", "option_type": "put",
            "strike": "150.00", "contracts": 3, "multiplier": 100}  # fmt: skip
    (event,) = await effect(client, "option_assigned", data)
    assert event["data"]["transaction"]["amount"] == "-45000.00"
    (call,) = await effect(
        client, "option_assigned", {**data, "assignment_id": "a-2", "option_type": "call"}
    )
    assert call["data"]["transaction"]["amount"] == "45000.00"


async def test_rule_9_same_fill_twice_applies_once_and_other_figures_conflict(
    client: Client,
) -> None:
    gen = (await client.initialize())["generation"]
    f = fill(gen["id"])
    await effect(client, "trade_filled", f)
    assert (
        await effect(client, "trade_filled", f, want=0) == []
    )  # re-sent under another envelope id
    conflict = rejection(await effect(client, "trade_filled", {**f, "price": "9.99"}))
    assert conflict["code"] == "fill_conflict"
    history = await client.query(
        "alluse.query.history", {"account_id": gen["id"], "type": "trade_premium"}
    )
    assert [t["amount"] for t in history["data"]["transactions"]] == ["698.70"]


@pytest.mark.parametrize(
    ("over", "breach"),
    [
        ({"filled_at": MONDAY}, "entry_day"),
        ({"delta": "-0.60"}, "delta"),
        ({"week_type": "W-IDL"}, "week_type"),
        ({"week_type": "P-DD"}, "week_type"),
    ],
)
async def test_rule_8_protocol_breach_is_recorded_announced_and_money_still_moves(
    client: Client, over: dict[str, Any], breach: str
) -> None:
    gen = (await client.initialize())["generation"]
    moved, violation = await effect(client, "trade_filled", fill(gen["id"], **over), want=2)
    assert moved["data"]["balance"] == "100698.70"
    assert violation["type"] == "alluse.account.protocol_violation"
    assert violation["data"]["violations"][0].startswith(breach)
    assert violation["data"]["adherence_score"] == "95.00"


async def test_ws2_non_compliant_validation_lowers_adherence(client: Client) -> None:
    rev = (await client.initialize())["revenue"]
    data = {
        "account_id": rev["id"],
        "trade_ref": "t-9",
        "compliant": False,
        "violations": ["size", "delta"],
    }
    (event,) = await effect(client, "protocol_validated", data)
    assert event["data"]["violation_count"] == 2 and event["data"]["adherence_score"] == "90.00"


async def test_valuation_breaching_max_drawdown_is_announced_once(client: Client) -> None:
    com = (await client.initialize())["compounding"]  # 75,000.00, max drawdown 7 %
    data = {"account_id": com["id"], "positions_market_value": "0.00", "as_of": THURSDAY}
    assert await effect(client, "account_valuation", data, want=0) == []
    (breach,) = await effect(
        client, "account_valuation", {**data, "positions_market_value": "-6000.00"}
    )
    assert breach["type"] == "alluse.account.drawdown_breached"
    assert breach["data"]["drawdown_pct"] == "8.00"
    assert (
        await effect(
            client, "account_valuation", {**data, "positions_market_value": "-7000.00"}, want=0
        )
        == []
    )


async def test_fill_for_closed_or_unknown_account_is_rejected(client: Client) -> None:
    (created,) = await client.command("alluse.account.create", {"type": "generation"})
    account_id = created["data"]["account"]["id"]
    await client.command("alluse.account.close", {"account_id": account_id}, want=2)
    assert (
        rejection(await effect(client, "trade_filled", fill(account_id)))["code"]
        == "account_closed"
    )
    assert (
        rejection(await effect(client, "trade_filled", fill(str(uuid.uuid4()))))["code"]
        == "unknown_account"
    )
    assert (
        rejection(await effect(client, "trade_filled", fill("not-a-uuid")))["code"]
        == "unknown_account"
    )
