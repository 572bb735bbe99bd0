"""Returns, drawdowns and risk of a (timestamp, balance) series, Decimal only.

No floats anywhere: Decimal has sqrt(). Percentages are in percent (2.5 = 2.5 %),
quantized to 4 places.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from .errors import InvalidPayload, Problem
from .money import ZERO

PCT = Decimal("0.0001")
WEEKS_PER_YEAR = 52
Point = tuple[datetime, Decimal]


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(PCT) if whole else ZERO.quantize(PCT)


def ordered(series: Sequence[Point]) -> list[Point]:
    naive = [ts for ts, _ in series if ts.tzinfo is None]
    if naive:
        raise InvalidPayload([Problem("series", "timestamps must be timezone-aware")])
    return sorted(((ts.astimezone(UTC), b) for ts, b in series), key=lambda p: p[0])


def _week(ts: datetime) -> Hashable:
    return ts.isocalendar()[:2]


def _month(ts: datetime) -> Hashable:
    return ts.year, ts.month


def _quarter(ts: datetime) -> Hashable:
    return ts.year, (ts.month - 1) // 3


def period_returns(
    series: Sequence[Point], period: Callable[[datetime], Hashable]
) -> tuple[Decimal, ...]:
    """Return % of each period (UTC), closing balance over the previous close.

    The first period is measured from the first observation. A period starting from a
    zero balance has no meaningful return and reports 0.
    """
    points = ordered(series)
    if not points:
        return ()
    closes: dict[Hashable, Decimal] = {}
    for ts, balance in points:
        closes[period(ts)] = balance  # later points overwrite: the period's close
    previous = points[0][1]
    out = []
    for close in closes.values():
        out.append(percent_of(close - previous, previous))
        previous = close
    return tuple(out)


def weekly_returns(series: Sequence[Point]) -> tuple[Decimal, ...]:
    return period_returns(series, _week)


def monthly_returns(series: Sequence[Point]) -> tuple[Decimal, ...]:
    return period_returns(series, _month)


def quarterly_returns(series: Sequence[Point]) -> tuple[Decimal, ...]:
    return period_returns(series, _quarter)


def drawdowns(series: Sequence[Point]) -> tuple[Decimal, Decimal]:
    """(current, max) drawdown in %: the fall from the running peak, 0 at a new high."""
    peak, current, worst = ZERO, ZERO, ZERO
    for _, balance in ordered(series):
        peak = max(peak, balance)
        current = percent_of(peak - balance, peak)
        worst = max(worst, current)
    return current.quantize(PCT), worst.quantize(PCT)


def _mean_variance(xs: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Mean and sample variance (n - 1); needs at least two values."""
    mean = sum(xs, start=ZERO) / len(xs)
    return mean, sum(((x - mean) ** 2 for x in xs), start=ZERO) / (len(xs) - 1)


def volatility(returns_pct: Sequence[Decimal]) -> Decimal:
    """Sample standard deviation of the returns; 0 with fewer than two."""
    if len(returns_pct) < 2:
        return ZERO.quantize(PCT)
    return _mean_variance(returns_pct)[1].sqrt().quantize(PCT)


def sharpe_ratio(
    weekly_pct: Sequence[Decimal],
    *,
    risk_free_annual_pct: Decimal = ZERO,
    periods_per_year: int = WEEKS_PER_YEAR,
) -> Decimal | None:
    """Annualized Sharpe of weekly returns; None when undefined (< 2 returns or no volatility)."""
    if len(weekly_pct) < 2:
        return None
    mean, variance = _mean_variance(weekly_pct)
    if not variance:
        return None
    excess = mean - risk_free_annual_pct / periods_per_year
    return (excess / variance.sqrt() * Decimal(periods_per_year).sqrt()).quantize(PCT)
