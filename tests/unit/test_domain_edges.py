"""Account-domain rules at their edges, where `make mutate` (docs/testing.md) found changes the
other unit tests let through: an assignment's amount and sign, the valuation tolerance, the fork
guards' periods."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from services.account.domain.growth import (
    ForkCoolingPeriod,
    ForkDailyLimit,
    check_fork_guards,
)
from services.account.domain.marks import Mismatch, compare_valuation
from services.account.domain.settings import DEFAULT_SETTINGS
from services.account.domain.trading import assignment_amount

NOW = datetime(2026, 11, 26, 15, tzinfo=UTC)


@pytest.mark.parametrize(("option_type", "amount"), [("put", "-45000.00"), ("call", "45000.00")])
def test_an_assignment_moves_strike_times_contracts_times_multiplier(
    option_type: str, amount: str
) -> None:
    got = assignment_amount(option_type=option_type, strike=D("150"), contracts=3, multiplier=100)
    assert got == D(amount)  # a put buys the shares (debit), a call sells them (credit)


def test_a_valuation_differing_by_exactly_the_tolerance_is_no_mismatch() -> None:
    # 0.5 % of a 100,000.00 account is 500.00: that much difference is tolerated, a cent more not.
    def compare(broker: str) -> Mismatch | None:
        return compare_valuation(
            own=D("-1000.00"), broker=D(broker), value=D("100000.00"), tolerance_pct=D("0.5")
        )

    assert compare("-500.00") is None and compare("-1500.00") is None
    assert compare("-499.99") == Mismatch(D("-1000.00"), D("-499.99"), D("500.01"), D("500.00"))
    assert compare("-1500.01") == Mismatch(D("-1000.00"), D("-1500.01"), D("-500.01"), D("500.00"))


def guards(last: datetime | None, tree: list[datetime]) -> None:
    check_fork_guards(
        now=NOW, last_fork_of_account=last, tree_fork_times=tree, settings=DEFAULT_SETTINGS
    )


def test_the_cooling_period_ends_exactly_its_hours_after_the_last_fork() -> None:
    hours = DEFAULT_SETTINGS.cooling_period_hours
    guards(NOW - timedelta(hours=hours), [])
    with pytest.raises(ForkCoolingPeriod) as caught:
        guards(NOW - timedelta(hours=hours) + timedelta(seconds=1), [])
    assert f"one fork per {hours} h" in caught.value.message


def test_the_daily_limit_counts_the_forks_of_the_last_24_hours_only() -> None:
    limit = DEFAULT_SETTINGS.daily_fork_limit
    day = timedelta(hours=24)
    guards(None, [NOW - day] * limit)  # exactly a day old: no longer counted
    guards(None, [NOW - day + timedelta(seconds=1)] * (limit - 1))
    with pytest.raises(ForkDailyLimit) as caught:
        guards(None, [NOW - day + timedelta(seconds=1)] * limit)
    assert caught.value.message == f"{limit} forks in this tree in the last 24 h"
