"""docs/rules.md sections 8-9 in the account service: effects of WS4/WS2 events as the integration
service forwards them."""

import uuid
from typing import Any

import pytest

from tests.support.account import Client, rejection

THURSDAY = "2026-11-26T15:00:00Z"
MONDAY = "2026-11-23T15:00:00Z"


async def effect(
    client: Client, type_: str, data: dict[str, Any], *, want: int = 1, id_: str | None = None
) -> list[dict[str, Any]]:
    return await client.effect(type_, data, want=want, id_=id_)


def money(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The balance change among an effect's events (positions move with it)."""
    (changed,) = [e for e in events if e["type"] == "alluse.account.balance_changed"]
    return changed


def fill(account_id: str, **over: Any) -> dict[str, Any]:
    return {
        "fill_id": uuid.uuid4().hex,
        "order_id": "o-1",
        "account_id": account_id,
        "symbol": "NVDA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "120.00",
        "expiration": "2026-12-04",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 2,
        "price": "3.50",
        "multiplier": 100,
        "commission": "1.30",
        "filled_at": THURSDAY,
        "week_type": "P-EW",
        **over,
    }


async def test_rule_9_selling_to_open_credits_premium_less_commission(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    event = money(await effect(client, "trade_filled", fill(gen["id"]), want=2))
    assert event["data"]["transaction"]["amount"] == "698.70"  # 2 x 3.50 x 100 - 1.30
    assert event["data"]["transaction"]["type"] == "trade_premium"
    assert event["data"]["transaction"]["week_type"] == "P-EW"  # trades are tagged with the week
    assert event["data"]["balance"] == "100698.70"
    assert event["causationid"] == event["correlationid"]


async def test_rule_9_buying_to_close_debits_price_and_commission(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    await effect(client, "trade_filled", fill(gen["id"]), want=2)
    close = fill(gen["id"], side="buy_to_close", price="0.25", filled_at=MONDAY)
    event = money(await effect(client, "trade_filled", close, want=2))
    assert event["data"]["transaction"]["amount"] == "-51.30"  # closing is free of entry days


async def test_rule_9_put_assignment_debits_strike_times_contracts(client: Client) -> None:
    gen = (await client.initialize())["generation"]
    for option in ("put", "call"):  # the short call is covered by the shares the put brought
        sold = fill(gen["id"], symbol="AMD", option_type=option, strike="150.00", quantity=3)
        await effect(client, "trade_filled", sold, want=2)
    data = {
        "assignment_id": "a-1",
        "account_id": gen["id"],
        "symbol": "AMD",
        "option_type": "put",
        "strike": "150.00",
        "contracts": 3,
        "multiplier": 100,
    }
    event = money(await effect(client, "option_assigned", data, want=3))
    assert event["data"]["transaction"]["amount"] == "-45000.00"
    call = money(
        await effect(
            client,
            "option_assigned",
            {**data, "assignment_id": "a-2", "option_type": "call"},
            want=3,
        )
    )
    assert call["data"]["transaction"]["amount"] == "45000.00"


async def test_rule_9_same_fill_twice_applies_once_and_other_figures_conflict(
    client: Client,
) -> None:
    gen = (await client.initialize())["generation"]
    f = fill(gen["id"])
    await effect(client, "trade_filled", f, want=2)
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
    events = await effect(client, "trade_filled", fill(gen["id"], **over), want=3)
    assert money(events)["data"]["balance"] == "100698.70"
    (violation,) = [e for e in events if e["type"] == "alluse.account.protocol_violation"]
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
