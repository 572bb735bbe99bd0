"""docs/rules.md section 11: value from marks, the position-sizing check, the broker's valuation
compared.

Options are marked at the bid/ask mid of their own quote (the OCC symbol), shares at the last
price of the ticker, anything without a quote at cost. Value = cash + marked positions; the
drawdown of section 7 runs on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .money import ZERO, to_cents
from .positions import Holding


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal
    ask: Decimal
    last: Decimal


@dataclass(frozen=True, slots=True)
class Marked:
    holding: Holding
    price: Decimal | None  # the mark per share or per option; None: valued at cost
    value: Decimal


def mark(holding: Holding, quote: Quote | None) -> Marked:
    if quote is None:
        return Marked(holding, None, holding.cost)
    price = (quote.bid + quote.ask) / 2 if holding.contract.is_option else quote.last
    value = to_cents(Decimal(holding.quantity) * price * holding.contract.multiplier)
    return Marked(holding, price, value)


def mark_all(holdings: Iterable[Holding], quotes: Mapping[str, Quote]) -> list[Marked]:
    return [mark(h, quotes.get(h.contract.key)) for h in holdings if h.quantity]


def positions_value(marked: Iterable[Marked]) -> Decimal:
    return sum((m.value for m in marked), start=ZERO)


def sizing_breach(
    *, value: Decimal, sizing_pct: Decimal, strike: Decimal, contracts: int, multiplier: int
) -> str | None:
    """Opening a short put whose assignment would cost more than the account's position-sizing
    share of its value is a protocol violation (section 11)."""
    cost = to_cents(strike * contracts * multiplier)
    limit = to_cents(value * sizing_pct / 100)
    if cost <= limit:
        return None
    return f"position_sizing: assignment would cost {cost}, above {sizing_pct} % of value {value} ({limit})"


@dataclass(frozen=True, slots=True)
class Mismatch:
    own: Decimal
    broker: Decimal
    difference: Decimal  # broker - own
    tolerance: Decimal


def compare_valuation(
    *, own: Decimal, broker: Decimal, value: Decimal, tolerance_pct: Decimal
) -> Mismatch | None:
    """The broker's positions value against the platform's own marks: a difference beyond
    `tolerance_pct` of the account's value (at least one cent) is a mismatch to announce."""
    tolerance = max(to_cents(abs(value) * tolerance_pct / 100), Decimal("0.01"))
    difference = broker - own
    return Mismatch(own, broker, difference, tolerance) if abs(difference) > tolerance else None
