"""The payloads (`data`) of the WS2 and WS4 types an engine publishes, as typed dicts.

Amounts are decimal strings (or Decimal) with at most 2 places, prices and strikes at most 4;
dates `YYYY-MM-DD`; times RFC 3339 with a zone. The platform refuses, never rounds.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Literal, NotRequired, TypedDict

Decimalish = Decimal | str
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
Side = Literal["sell_to_open", "buy_to_close", "buy_to_open", "sell_to_close", "buy", "sell"]


class WeekClassified(TypedDict):
    """`ws2.week.classified`: the classification of the week starting `week_start` (Monday)."""

    week_start: date | str
    week_type: WeekType
    confidence: Decimalish  # 0..1
    reasoning: NotRequired[str]
    symbol: NotRequired[str]
    movement_pct: NotRequired[Decimalish]


class ProtocolValidated(TypedDict):
    """`ws2.protocol.validated`: the verdict on one trade; a compliant one lists no violations."""

    account_id: str
    trade_ref: str
    compliant: bool
    violations: list[str]
    week_type: NotRequired[WeekType]


class TradeFilled(TypedDict):
    """`ws4.trade.filled`: one execution; `fill_id` unique per fill of this engine."""

    fill_id: str
    order_id: str
    account_id: str
    symbol: str
    instrument_type: Literal["option", "stock"]
    option_type: NotRequired[Literal["put", "call"]]
    strike: NotRequired[Decimalish]
    expiration: NotRequired[date | str]
    delta: NotRequired[Decimalish]  # [-1, 1], puts negative
    side: Side
    quantity: int
    price: Decimalish
    multiplier: NotRequired[int]  # 100 for options, 1 for stock when left out
    commission: Decimalish
    filled_at: datetime | str


class OptionAssigned(TypedDict):
    """`ws4.option.assigned`: a put debits strike x contracts x multiplier; a call credits it."""

    assignment_id: str
    account_id: str
    symbol: str
    option_type: Literal["put", "call"]
    strike: Decimalish
    contracts: int
    multiplier: NotRequired[int]
    expiration: NotRequired[date | str]  # the series assigned, when the broker names it


class OptionExpired(TypedDict):
    """`ws4.option.expired`: contracts of an option position expired worthless."""

    expiration_id: str
    account_id: str
    symbol: str
    option_type: Literal["put", "call"]
    strike: Decimalish
    expiration: date | str
    contracts: int


class AccountValuation(TypedDict):
    """`ws4.account.valuation`: the market value of the account's open positions."""

    account_id: str
    positions_market_value: Decimalish
    as_of: datetime | str


class MarketQuote(TypedDict):
    """`ws4.market.quote`: the latest quote of a symbol."""

    symbol: str
    bid: Decimalish
    ask: Decimalish
    last: Decimalish
    as_of: datetime | str
