"""The inbound types of the WS2 protocol engine and the WS4 market integration (docs/contract.md).

Amounts are decimal strings with at most 2 places, prices and strikes decimal strings with at
most 4; a float-like "1.234567890123" is refused rather than rounded. A fill's `delta` is the
option's delta in [-1, 1] (puts negative, e.g. "-0.45"); the protocol's delta ranges of
docs/rules.md section 1 (Gen 40-50, Rev 30-40, Com 20-30) are compared with |delta| x 100."""

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from shared.contracts.money import Money, _as_string, parse_money

WEEK_TYPES = (
    "P-EW",
    "P-AWL",
    "P-RO",
    "P-AOL",
    "P-DD",
    "C-WAP",
    "C-WAP+",
    "C-PNO",
    "C-RO",
    "C-REC",
    "W-IDL",
)
WeekType = Literal[
    "P-EW",
    "P-AWL",
    "P-RO",
    "P-AOL",
    "P-DD",
    "C-WAP",
    "C-WAP+",
    "C-PNO",
    "C-RO",
    "C-REC",
    "W-IDL",
]


def _price(value: Any) -> Decimal:
    amount = parse_money(value, places=4)
    if amount < 0:
        raise ValueError("must not be negative")
    return amount


def _positive_price(value: Any) -> Decimal:
    amount = _price(value)
    if amount == 0:
        raise ValueError("must be greater than zero")
    return amount


def _ratio(value: Any) -> Any:
    """A ratio may come as a JSON number (exact, via Decimal parsing) or a decimal string."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    return value


def _decimal_string(places: int, *, signed: bool = True) -> WithJsonSchema:
    sign = "-?" if signed else ""
    return WithJsonSchema(
        {"type": "string", "pattern": rf"^{sign}\d+(\.\d{{1,{places}}})?$", "examples": ["12.50"]}
    )


Amount = Annotated[Money, _decimal_string(2)]  # Money, described as the string it is on the wire
Id = Annotated[str, Field(min_length=1, max_length=200)]
Symbol = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-/^ ]+$")]
Price = Annotated[Decimal, BeforeValidator(_price), _as_string, _decimal_string(4, signed=False)]
PositivePrice = Annotated[
    Decimal, BeforeValidator(_positive_price), _as_string, _decimal_string(4, signed=False)
]
Count = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
Ratio = Annotated[
    Decimal,
    BeforeValidator(_ratio),
    _as_string,
    WithJsonSchema({"type": ["string", "number"], "description": 'decimal, e.g. "0.45"'}),
]
Side = Literal["sell_to_open", "buy_to_close", "buy_to_open", "sell_to_close", "buy", "sell"]
OPTION_SIDES = frozenset({"sell_to_open", "buy_to_close", "buy_to_open", "sell_to_close"})


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeekClassified(Upstream):
    """`ws2.week.classified`: WS2's classification of the trading week starting `week_start`."""

    week_start: date
    week_type: WeekType
    confidence: Annotated[Ratio, Field(ge=0, le=1)]
    reasoning: Annotated[str, Field(max_length=4000)] | None = None
    symbol: Symbol | None = None
    movement_pct: Ratio | None = None


class ProtocolValidated(Upstream):
    """`ws2.protocol.validated`: WS2's verdict on one trade; violations are recorded."""

    account_id: Id
    trade_ref: Id
    compliant: Annotated[bool, Field(strict=True)]
    violations: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=50)]
    week_type: WeekType | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.compliant and self.violations:
            raise ValueError("a compliant trade lists no violations")
        return self


class TradeFilled(Upstream):
    """`ws4.trade.filled`: one execution at the broker; `fill_id` is unique per fill."""

    fill_id: Id
    order_id: Id
    account_id: Id
    symbol: Symbol
    instrument_type: Literal["option", "stock"]
    option_type: Literal["put", "call"] | None = None
    strike: PositivePrice | None = None
    expiration: date | None = None
    delta: Annotated[Ratio, Field(ge=-1, le=1)] | None = None
    side: Side
    quantity: Count
    price: PositivePrice
    multiplier: Count = 100  # 1 for stock when not given
    commission: Amount
    filled_at: AwareDatetime

    @model_validator(mode="before")
    @classmethod
    def _stock_multiplier(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("instrument_type") == "stock":
            return {"multiplier": 1, **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.commission < 0:
            raise ValueError("commission must not be negative")
        if self.instrument_type == "option":
            if self.option_type is None or self.strike is None:
                raise ValueError("an option fill needs option_type and strike")
            if self.side not in OPTION_SIDES:
                raise ValueError(f"side '{self.side}' is for stock; options open or close")
        elif self.side in OPTION_SIDES or self.option_type or self.strike or self.delta:
            raise ValueError("a stock fill has side buy or sell and no option fields")
        return self


class OptionAssigned(Upstream):
    """`ws4.option.assigned`: a put debits strike x contracts x multiplier; a call credits it."""

    assignment_id: Id
    account_id: Id
    symbol: Symbol
    option_type: Literal["put", "call"]
    strike: PositivePrice
    contracts: Count
    multiplier: Count = 100
    # The series assigned, when the broker names it; without it, the nearest expiration short.
    expiration: date | None = None


class OptionExpired(Upstream):
    """`ws4.option.expired`: `contracts` of an option position expired worthless (no cash)."""

    expiration_id: Id
    account_id: Id
    symbol: Symbol
    option_type: Literal["put", "call"]
    strike: PositivePrice
    expiration: date
    contracts: Count


class AccountValuation(Upstream):
    """`ws4.account.valuation`: the market value of the account's open positions (may be < 0)."""

    account_id: Id
    positions_market_value: Amount
    as_of: AwareDatetime


class MarketQuote(Upstream):
    """`ws4.market.quote`: the latest quote of a symbol, recorded for marks."""

    symbol: Symbol
    bid: Price
    ask: Price
    last: Price
    as_of: AwareDatetime


UPSTREAM_TYPES: dict[str, type[Upstream]] = {
    "ws2.week.classified": WeekClassified,
    "ws2.protocol.validated": ProtocolValidated,
    "ws4.trade.filled": TradeFilled,
    "ws4.option.assigned": OptionAssigned,
    "ws4.option.expired": OptionExpired,
    "ws4.account.valuation": AccountValuation,
    "ws4.market.quote": MarketQuote,
}

# Upstream types forwarded to the account service as effects, and the effect's type there.
EFFECT_TYPES = {
    "ws4.trade.filled": "alluse.effect.trade_filled",
    "ws4.option.assigned": "alluse.effect.option_assigned",
    "ws4.option.expired": "alluse.effect.option_expired",
    "ws4.market.quote": "alluse.effect.market_quote",
    "ws4.account.valuation": "alluse.effect.account_valuation",
    "ws2.protocol.validated": "alluse.effect.protocol_validated",
}
