"""Section 7 of docs/rules.md: per-account performance metrics."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.account.domain import (
    TradeStats,
    ValidationFailed,
    account_metrics,
    adherence_score,
    drawdowns,
    monthly_returns,
    quarterly_returns,
    sharpe_ratio,
    volatility,
    weekly_returns,
)

MON = datetime(2025, 1, 6, 15, tzinfo=UTC)  # a Monday


def weekly(*balances: str) -> list[tuple[datetime, D]]:
    return [(MON + timedelta(weeks=i), D(b)) for i, b in enumerate(balances)]


def test_rule_7_total_return_and_return_pct() -> None:
    m = account_metrics(weekly("100000", "101000", "103000"))
    assert m.total_return == D("3000.00") and m.total_return_pct == D("3.0000")


def test_rule_7_total_return_against_contributed_capital_ignores_deposits() -> None:
    series = weekly("100000", "151000")  # a 50,000 deposit and 1,000 of income
    m = account_metrics(series, contributed_capital=D("150000"))
    assert m.total_return == D("1000.00") and m.total_return_pct == D("0.6667")


def test_rule_7_weekly_returns_compare_each_week_close_to_the_previous() -> None:
    series = weekly("100000", "102000", "99960")
    series.append((MON + timedelta(days=7, hours=-2), D("500")))  # earlier that week: not its close
    assert weekly_returns(series) == (D("0.0000"), D("2.0000"), D("-2.0000"))


def test_rule_7_monthly_and_quarterly_returns_bucket_by_calendar() -> None:
    series = [
        (datetime(2025, 1, 2, tzinfo=UTC), D("1000")),
        (datetime(2025, 1, 31, tzinfo=UTC), D("1100")),
        (datetime(2025, 2, 28, tzinfo=UTC), D("1210")),
        (datetime(2025, 4, 1, tzinfo=UTC), D("1089")),
    ]
    assert monthly_returns(series) == (D("10.0000"), D("10.0000"), D("-10.0000"))
    assert quarterly_returns(series) == (D("21.0000"), D("-10.0000"))


def test_rule_7_current_and_max_drawdown() -> None:
    current, worst = drawdowns(weekly("100", "120", "90", "110", "108"))
    assert worst == D("25.0000")  # 120 -> 90
    assert current == D("10.0000")  # 120 -> 108
    assert drawdowns(weekly("100", "110"))[0] == D("0.0000")


def test_rule_7_volatility_is_sample_stdev_of_weekly_returns() -> None:
    assert volatility([D(1), D(3)]) == D("1.4142")
    assert volatility([D(2)]) == D("0.0000")


def test_rule_7_sharpe_ratio_annualized_with_risk_free_rate() -> None:
    returns = [D(1), D(3)]  # mean 2, stdev sqrt(2)
    assert sharpe_ratio(returns) == D("10.1980")  # 2 / 1.41421 * sqrt(52)
    assert sharpe_ratio(returns, risk_free_annual_pct=D(52)) == D("5.0990")  # excess 1
    assert sharpe_ratio([D(1), D(1)]) is None
    assert sharpe_ratio([D(1)]) is None


def test_rule_7_protocol_adherence_starts_at_100_and_drops_per_violation() -> None:
    assert adherence_score(0) == D("100.00")
    assert adherence_score(3) == D("85.00")
    assert adherence_score(3, penalty=D("2.5")) == D("92.50")
    assert adherence_score(50) == D("0.00")


def test_rule_7_metrics_carry_trade_counts() -> None:
    stats = TradeStats(successful_trades=8, total_trades=10, premium_collected=D("1234.50"))
    m = account_metrics(weekly("100", "101"), trades=stats, violations=1)
    assert m.trades.total_trades == 10 and m.trades.premium_collected == D("1234.50")
    assert m.protocol_adherence_score == D("95.00")


def test_rule_7_metrics_refuse_naive_timestamps() -> None:
    with pytest.raises(ValidationFailed) as err:
        weekly_returns([(datetime(2025, 1, 6), D("100"))])
    assert err.value.code == "invalid_payload"


def test_rule_7_empty_series_yields_zero_metrics() -> None:
    m = account_metrics([])
    assert (m.total_return, m.max_drawdown_pct, m.sharpe_ratio) == (D("0.00"), D("0.0000"), None)


@given(st.lists(st.decimals(min_value=D("0.01"), max_value=D("1e9"), places=2), min_size=1))
def test_rule_7_property_drawdowns_are_between_0_and_100(balances: list[D]) -> None:
    current, worst = drawdowns(weekly(*map(str, balances)))
    assert D(0) <= current <= worst <= D(100)


@given(st.integers(min_value=0, max_value=1000))
def test_rule_7_property_adherence_score_never_below_zero(violations: int) -> None:
    assert D(0) <= adherence_score(violations) <= D(100)
