"""docs/rules.md section 6: quarterly reinvestment of Rev-Acc and Com-Acc net trading income. Pure.

A reinvestment falls due at 00:00 UTC on the last day of each reinvestment month, and covers
the trading income booked since the previous due point: periods are contiguous, so no day's
income is counted twice or never.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from shared.contracts.vocabulary import Refusal

from .enums import AccountType, TransactionType
from .errors import AccountError, AlreadyReinvested, NotAReinvestingAccount
from .model import Account
from .money import ZERO, to_cents

REINVESTING_TYPES = frozenset({AccountType.REVENUE, AccountType.COMPOUNDING})
# Premiums, realized gains and losses (assignments, closing trades) and fees.
TRADING_INCOME = frozenset(
    {
        TransactionType.TRADE_PREMIUM,
        TransactionType.TRADE_ASSIGNMENT,
        TransactionType.TRADE_SHARES,
        TransactionType.FEE,
    }
)
_LABEL = re.compile(r"^(\d{4})-Q([1-4])$")


class UnknownQuarter(AccountError):
    code = Refusal.UNKNOWN_QUARTER


class QuarterNotDue(AccountError):
    code = Refusal.QUARTER_NOT_DUE


def check_reinvestable(account: Account, *, quarter: str, done: bool) -> None:
    """Revenue and Com-Acc reinvest quarterly, once per quarter; Gen-Acc weekly (not here)."""
    if account.type not in REINVESTING_TYPES:
        raise NotAReinvestingAccount(
            f"{account.type.value} accounts reinvest weekly, not quarterly"
        )
    if done:
        raise AlreadyReinvested(f"account {account.id} reinvested {quarter} already")


@dataclass(frozen=True, slots=True)
class Period:
    quarter: str  # "2026-Q1"
    start: datetime  # inclusive
    end: datetime  # exclusive: the due point


def due_point(year: int, month: int) -> datetime:
    return datetime(year, month, calendar.monthrange(year, month)[1], tzinfo=UTC)


def _label(due: datetime) -> str:
    return f"{due.year}-Q{(due.month - 1) // 3 + 1}"


def _points(months: Sequence[int], years: Iterable[int]) -> list[datetime]:
    return sorted(due_point(y, m) for y in years for m in months)


def latest_period(months: Sequence[int], at: datetime) -> Period:
    """The most recent period whose due point is at or before `at`."""
    points = [p for p in _points(months, range(at.year - 2, at.year + 1)) if p <= at]
    return Period(_label(points[-1]), points[-2], points[-1])


def quarter_period(months: Sequence[int], quarter: str, at: datetime) -> Period:
    """The period named `quarter` ("2026-Q1"); refused when unknown or not yet due at `at`."""
    match = _LABEL.match(quarter)
    if not match:
        raise UnknownQuarter(f"quarter must look like 2026-Q1, got {quarter!r}")
    year, q = int(match[1]), int(match[2])
    points = _points(months, range(year - 2, year + 1))
    ends = [i for i, p in enumerate(points) if p.year == year and (p.month - 1) // 3 + 1 == q]
    if not ends:
        raise UnknownQuarter(f"no reinvestment month in {quarter} (months {list(months)})")
    period = Period(quarter, points[ends[0] - 1], points[ends[0]])
    if period.end > at:
        raise QuarterNotDue(f"{quarter} falls due at {period.end.isoformat()}")
    return period


@dataclass(frozen=True, slots=True)
class Allocation:
    net_income: Decimal
    contracts: Decimal
    leaps: Decimal


def net_income(rows: Iterable[tuple[TransactionType, Decimal]]) -> Decimal:
    """Premiums and realized gains less fees and losses: trading rows only, signed."""
    return sum((amount for t, amount in rows if t in TRADING_INCOME), start=ZERO)


def allocate(income: Decimal, contracts_pct: Decimal) -> Allocation:
    """Contracts get `contracts_pct`, LEAPS the rest to the cent; a loss allocates nothing."""
    if income <= 0:
        return Allocation(income, ZERO, ZERO)
    contracts = to_cents(income * contracts_pct / 100)
    return Allocation(income, contracts, income - contracts)
