"""docs/rules.md section 6: quarterly reinvestment periods and the 75/25 allocation (pure)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.account.domain import TransactionType as T
from services.account.domain.reinvest import (
    QuarterNotDue,
    UnknownQuarter,
    allocate,
    latest_period,
    net_income,
    quarter_period,
)

D = Decimal
MONTHS = (3, 6, 9, 12)


def test_rule_6_due_on_the_last_day_of_each_reinvestment_month_covering_since_the_last() -> None:
    p = latest_period(MONTHS, datetime(2026, 5, 10, tzinfo=UTC))
    assert p.quarter == "2026-Q1"
    assert (p.start, p.end) == (
        datetime(2025, 12, 31, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    )
    assert latest_period(MONTHS, datetime(2026, 6, 30, tzinfo=UTC)).quarter == "2026-Q2"
    assert latest_period(MONTHS, datetime(2026, 1, 2, tzinfo=UTC)).quarter == "2025-Q4"


def test_rule_6_named_quarter_is_refused_before_it_is_due() -> None:
    at = datetime(2026, 4, 1, tzinfo=UTC)
    assert quarter_period(MONTHS, "2026-Q1", at).end == datetime(2026, 3, 31, tzinfo=UTC)
    with pytest.raises(QuarterNotDue):
        quarter_period(MONTHS, "2026-Q2", at)
    with pytest.raises(UnknownQuarter):
        quarter_period((6, 12), "2026-Q1", at)


def test_rule_6_net_income_is_premiums_and_gains_less_fees_and_losses() -> None:
    rows = [
        (T.TRADE_PREMIUM, D("1000.00")),
        (T.TRADE_PREMIUM, D("-51.30")),
        (T.TRADE_ASSIGNMENT, D("-200.00")),
        (T.FEE, D("-10.00")),
        (T.DEPOSIT, D("5000.00")),
        (T.FORK_TRANSFER, D("-1.00")),
    ]
    assert net_income(rows) == D("738.70")


def test_rule_6_allocated_75_contracts_25_leaps_to_the_cent() -> None:
    a = allocate(D("738.71"), D(75))
    assert (a.contracts, a.leaps) == (D("554.03"), D("184.68"))
    assert a.contracts + a.leaps == D("738.71")


def test_rule_6_a_losing_quarter_allocates_nothing() -> None:
    a = allocate(D("-12.00"), D(75))
    assert (a.net_income, a.contracts, a.leaps) == (D("-12.00"), D(0), D(0))
