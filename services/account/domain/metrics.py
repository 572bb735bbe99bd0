"""Per-account performance metrics (docs/rules.md section 7), Decimal in and Decimal out (no
floats)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from .money import ZERO, to_cents
from .returns import (
    Point,
    drawdowns,
    monthly_returns,
    ordered,
    percent_of,
    quarterly_returns,
    sharpe_ratio,
    volatility,
    weekly_returns,
)

DEFAULT_VIOLATION_PENALTY = Decimal(5)


@dataclass(frozen=True, slots=True)
class TradeStats:
    successful_trades: int = 0
    total_trades: int = 0
    premium_collected: Decimal = ZERO
    assignments: int = 0
    adjustments: int = 0


@dataclass(frozen=True, slots=True)
class AccountMetrics:
    total_return: Decimal
    total_return_pct: Decimal
    weekly_returns_pct: tuple[Decimal, ...]
    monthly_returns_pct: tuple[Decimal, ...]
    quarterly_returns_pct: tuple[Decimal, ...]
    current_drawdown_pct: Decimal
    max_drawdown_pct: Decimal
    volatility_pct: Decimal
    sharpe_ratio: Decimal | None
    protocol_adherence_score: Decimal
    trades: TradeStats


def adherence_score(violations: int, *, penalty: Decimal = DEFAULT_VIOLATION_PENALTY) -> Decimal:
    """Starts at 100, loses `penalty` per protocol violation, never below 0."""
    if violations < 0:
        raise ValueError("violations cannot be negative")
    return max(ZERO, Decimal(100) - penalty * violations).quantize(Decimal("0.01"))


def account_metrics(
    series: Sequence[Point],
    *,
    contributed_capital: Decimal | None = None,
    trades: TradeStats | None = None,
    violations: int = 0,
    risk_free_annual_pct: Decimal = ZERO,
    violation_penalty: Decimal = DEFAULT_VIOLATION_PENALTY,
) -> AccountMetrics:
    """All metrics of one account from its (timestamp, balance) series.

    Total return is measured against `contributed_capital` when given (so deposits and
    withdrawals are not mistaken for performance), else against the first balance.
    """
    points = ordered(series)
    start = points[0][1] if points else ZERO
    end = points[-1][1] if points else ZERO
    base = start if contributed_capital is None else contributed_capital
    weekly = weekly_returns(points)
    current_dd, max_dd = drawdowns(points)
    return AccountMetrics(
        total_return=to_cents(end - base),
        total_return_pct=percent_of(end - base, base),
        weekly_returns_pct=weekly,
        monthly_returns_pct=monthly_returns(points),
        quarterly_returns_pct=quarterly_returns(points),
        current_drawdown_pct=current_dd,
        max_drawdown_pct=max_dd,
        volatility_pct=volatility(weekly),
        sharpe_ratio=sharpe_ratio(weekly, risk_free_annual_pct=risk_free_annual_pct),
        protocol_adherence_score=adherence_score(violations, penalty=violation_penalty),
        trades=trades or TradeStats(),
    )
