"""Bad upstream input, one test each: DLQ for what is not a CloudEvent, a rejection with a code
and a reason naming the fields for a valid envelope with a bad payload."""

import asyncio
import contextlib
import json
import uuid
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

import pytest

from services.integration.handlers import FromUpstream
from shared.contracts.envelope import CloudEvent, EnvelopeError, decode, new_event
from shared.contracts.streams import WS2_EVENTS, WS4_EVENTS, Streams
from shared.contracts.upstream import WEEK_TYPES, TradeFilled, WeekClassified
from shared.infra.runtime.bulk import Statements
from shared.infra.stream.messaging import Emit, Rejected
from shared.infra.stream.pipeline import Dispatch, Route

TABLES = FromUpstream(Streams("")).routes()


class Unit:
    """The least a unit of work is (shared/infra/stream/pipeline.py's Unit): the dispatch only parses."""

    def __init__(self) -> None:
        self.events: list[Emit] = []

    def command(self, ev: CloudEvent) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def flush(self, out: Statements) -> None:
        pass


def parse(ev: CloudEvent, stream: str) -> Any:
    """What the integration service's dispatch stages make of an entry on `stream`."""
    got: list[Any] = []

    async def keep(_: Unit, model: Any) -> None:
        got.append(model)

    table = {t: Route(r.model, keep) for t, r in TABLES[stream].items()}
    dispatch = Dispatch(table, Streams(""), "tests", subject_is_account=False)
    asyncio.run(dispatch(Unit(), ev))
    return got[0]


def fill(**overrides: Any) -> dict[str, Any]:
    data = {
        "fill_id": f"fill-{uuid.uuid4().hex[:8]}",
        "order_id": "ord-1",
        "account_id": "acc-1",
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
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def entry(type_: str, data: dict[str, Any], subject: str | None = None) -> dict[bytes, bytes]:
    fields = new_event(type_, "ws4/gateway-1", data, subject=subject)
    return {k.encode(): v.encode() for k, v in fields.items()}


def event(type_: str, data: dict[str, Any], subject: str | None = None) -> CloudEvent:
    return decode(entry(type_, data, subject))


def rejection(type_: str, data: dict[str, Any], stream: str = WS4_EVENTS) -> Rejected:
    with pytest.raises(Rejected) as caught:
        parse(event(type_, data), stream)
    return caught.value


def test_a_valid_fill_parses_with_exact_decimals_and_the_option_multiplier() -> None:
    model = parse(event("ws4.trade.filled", fill()), WS4_EVENTS)
    assert isinstance(model, TradeFilled)
    assert model.price == Decimal("3.25") and model.multiplier == 100
    assert model.model_dump(mode="json")["price"] == "3.25"


def test_non_json_data_goes_to_the_dlq() -> None:
    fields = {**entry("ws4.trade.filled", fill()), b"data": b"{not json"}
    with pytest.raises(EnvelopeError, match="not JSON"):
        decode(fields)


def test_an_entry_of_one_megabyte_goes_to_the_dlq() -> None:
    fields = entry("ws4.trade.filled", fill(order_id="x" * 1_000_000))
    with pytest.raises(EnvelopeError, match="exceeds"):
        decode(fields)


def test_missing_fields_are_rejected_naming_them() -> None:
    r = rejection("ws4.trade.filled", fill(price=None, quantity=None))
    assert r.code == "invalid_payload"
    assert "quantity: Field required" in r.reason and "price: Field required" in r.reason


def test_extra_fields_are_rejected_naming_them() -> None:
    r = rejection("ws4.trade.filled", fill(venue="NASDAQ"))
    assert r.code == "invalid_payload" and "venue: Extra inputs are not permitted" in r.reason


def test_unknown_type_is_rejected() -> None:
    r = rejection("ws4.trade.exploded", fill())
    assert r.code == "unknown_type" and "ws4.trade.exploded" in r.reason


def test_a_type_on_the_wrong_stream_is_an_unknown_type() -> None:
    r = rejection("ws4.trade.filled", fill(), stream=WS2_EVENTS)
    assert r.code == "unknown_type"


def test_unknown_week_type_is_rejected() -> None:
    data = {"week_start": "2026-11-23", "week_type": "P-XYZ", "confidence": "0.8"}
    r = rejection("ws2.week.classified", data, stream=WS2_EVENTS)
    assert r.code == "invalid_payload" and r.reason.startswith("week_type:")


@pytest.mark.parametrize("code", WEEK_TYPES)
def test_each_of_the_eleven_week_types_is_accepted(code: str) -> None:
    data = {"week_start": "2026-11-23", "week_type": code, "confidence": Decimal("0.8")}
    assert parse(event("ws2.week.classified", data), WS2_EVENTS) == (
        WeekClassified(week_start="2026-11-23", week_type=code, confidence="0.8")
    )


def test_negative_quantity_is_rejected() -> None:
    r = rejection("ws4.trade.filled", fill(quantity=-5))
    assert r.code == "invalid_payload" and "quantity: Input should be greater than 0" in r.reason


def test_a_price_with_twelve_decimals_is_rejected() -> None:
    r = rejection("ws4.trade.filled", fill(price="3.250000000001"))
    assert r.code == "invalid_amount"
    assert "price: Value error, has more than 4 decimal places" in r.reason


def test_a_price_as_a_json_number_is_rejected() -> None:
    fields = {**entry("ws4.trade.filled", fill()), b"data": json.dumps(fill(price=3.25)).encode()}
    with pytest.raises(Rejected) as caught:
        parse(decode(fields), WS4_EVENTS)
    assert "price: Value error, must be a decimal string" in caught.value.reason


def test_a_subject_naming_another_account_is_rejected() -> None:
    with pytest.raises(Rejected, match="different accounts"):
        parse(event("ws4.trade.filled", fill(), subject="acc-2"), WS4_EVENTS)


def test_an_option_fill_without_strike_and_a_stock_fill_with_option_fields_are_rejected() -> None:
    assert "needs option_type and strike" in rejection("ws4.trade.filled", fill(strike=None)).reason
    stock = fill(instrument_type="stock", side="buy")
    assert "a stock fill" in rejection("ws4.trade.filled", stock).reason


def test_stock_fills_default_to_a_multiplier_of_one() -> None:
    stock = fill(instrument_type="stock", side="buy", option_type=None, strike=None, delta=None)
    model = parse(event("ws4.trade.filled", stock), WS4_EVENTS)
    assert isinstance(model, TradeFilled) and model.multiplier == 1


def test_a_compliant_verdict_with_violations_is_contradictory() -> None:
    data = {"account_id": "a", "trade_ref": "t", "compliant": True, "violations": ["late"]}
    assert rejection("ws2.protocol.validated", data, stream=WS2_EVENTS).code == "invalid_payload"


def test_an_effects_week_type_is_not_part_of_what_makes_it_the_same_effect() -> None:
    """The week type is looked up when the entry is forwarded: forwarded again after a new
    classification, the effect is the same; a figure that differs is another payload."""

    def effect(**data: Any) -> CloudEvent:
        fields = new_event("alluse.effect.trade_filled", "ws4/g", data, event_id="f-1")
        return decode({k.encode(): v.encode() for k, v in fields.items()})

    before, after = effect(price="3.25", week_type=None), effect(price="3.25", week_type="P-EW")
    assert before.fingerprint() == after.fingerprint()
    assert effect(price="3.30", week_type=None).fingerprint() != before.fingerprint()
    # An inbox row written before the week type was left out still matches its effect.
    legacy = before.fingerprints()[-1]
    assert legacy != before.fingerprint() and legacy in before.fingerprints()
