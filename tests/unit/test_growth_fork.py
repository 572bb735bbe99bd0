"""docs/rules.md section 4: fork eligibility, the fork plan and its guards (pure)."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    TransactionType,
)
from services.account.domain.growth import (
    ForkCollateralLocked,
    ForkCoolingPeriod,
    ForkDailyLimit,
    NotForkEligible,
    check_fork_guards,
    funding,
    is_fork_eligible,
    plan_fork,
)
from services.account.domain.positions import Contract, Holding, collateral
from services.account.domain.settings import DEFAULT_SETTINGS, GrowthSettings

D = Decimal
NOW = datetime(2026, 3, 5, 15, tzinfo=UTC)


def account(
    balance: str,
    baseline: str = "100000.00",
    type_: AccountType = AccountType.GENERATION,
    status: AccountStatus = AccountStatus.ACTIVE,
) -> Account:
    return Account(
        id=uuid.uuid4(),
        portfolio_id=uuid.uuid4(),
        type=type_,
        status=status,
        balance=D(balance),
        contributed_capital=D(baseline),
        baseline=D(baseline),
        config=AccountConfig.for_type(type_),
    )


def test_rule_4_fork_eligible_at_a_50k_surplus_over_baseline() -> None:
    assert not is_fork_eligible(account("149999.99"))
    assert is_fork_eligible(account("150000.00"))


def test_rule_4_only_an_active_gen_acc_forks() -> None:
    assert not is_fork_eligible(account("200000.00", type_=AccountType.COMPOUNDING))
    assert not is_fork_eligible(account("200000.00", type_=AccountType.REVENUE))
    assert not is_fork_eligible(account("200000.00", status=AccountStatus.SUSPENDED))


def test_rule_4_fork_moves_the_whole_surplus_split_50_50_and_parent_returns_to_baseline() -> None:
    plan = plan_fork(account("153333.33"), DEFAULT_SETTINGS, collateral=D(0))
    assert plan.surplus == D("53333.33")
    assert plan.debit.type is TransactionType.FORK_TRANSFER and plan.debit.amount == D("-53333.33")
    assert plan.debit.balance_after == D("100000.00") == plan.debit.baseline_after
    assert plan.debit.contributed_after == D("100000.00")  # surplus out: the buffer stays
    assert (plan.child_generation, plan.child_compounding) == (
        D("26666.66"),
        D("26666.67"),
    )  # to the cent


def test_rule_4_split_is_a_setting() -> None:
    plan = plan_fork(account("160000.00"), GrowthSettings(fork_split_pct=D(60)), collateral=D(0))
    assert (plan.child_generation, plan.child_compounding) == (D("36000.00"), D("24000.00"))


def test_rule_4_not_eligible_is_refused_with_a_code() -> None:
    with pytest.raises(NotForkEligible) as exc:
        plan_fork(account("120000.00"), DEFAULT_SETTINGS, collateral=D(0))
    assert exc.value.code == "not_fork_eligible"


def short_put(strike: str, contracts: int, symbol: str = "AAPL") -> Holding:
    return Holding(Contract(symbol, "put", D(strike), None, 100), -contracts, D("-100.00"))


def test_rule_11_collateral_is_strike_x_100_x_contracts_of_short_puts_only() -> None:
    held = [
        short_put("183", 5),
        short_put("40.5", 2, "AMD"),
        Holding(Contract("AAPL", "call", D("190"), None, 100), -3, D("-300.00")),  # covered call
        Holding(Contract("AAPL", "put", D("150"), None, 100), 1, D("50.00")),  # a long put
        Holding(Contract("AAPL"), 500, D("91500.00")),  # shares
    ]
    assert collateral(held) == D("91500") + D("8100")


def test_rule_4_fork_takes_only_cash_free_of_collateral_else_it_waits() -> None:
    parent = account("160000.00")  # surplus 60,000; the fork would leave 100,000
    assert plan_fork(parent, DEFAULT_SETTINGS, collateral=D("100000")).surplus == D("60000.00")
    with pytest.raises(ForkCollateralLocked) as exc:  # 6 x 183 puts secure 109,800
        plan_fork(parent, DEFAULT_SETTINGS, collateral=collateral([short_put("183", 6)]))
    assert exc.value.code == "fork_collateral_locked"
    assert "109800" in exc.value.message


def test_rule_4_child_funding_is_contributed_capital_and_its_baseline() -> None:
    empty = account("0.00", baseline="0.00")
    credit = funding(empty, TransactionType.FORK_TRANSFER, D("25000.00"))
    assert (credit.balance_after, credit.contributed_after, credit.baseline_after) == (
        D("25000.00"),
    ) * 3


def test_rule_4_one_fork_per_account_per_cooling_period() -> None:
    with pytest.raises(ForkCoolingPeriod):
        check_fork_guards(
            now=NOW,
            last_fork_of_account=NOW - timedelta(hours=23, minutes=59),
            tree_fork_times=[],
            settings=DEFAULT_SETTINGS,
        )
    check_fork_guards(
        now=NOW,
        last_fork_of_account=NOW - timedelta(hours=24),
        tree_fork_times=[],
        settings=DEFAULT_SETTINGS,
    )


def test_rule_4_a_fork_dated_after_now_still_blocks() -> None:
    with pytest.raises(ForkCoolingPeriod):
        check_fork_guards(
            now=NOW,
            last_fork_of_account=NOW + timedelta(days=3),
            tree_fork_times=[],
            settings=DEFAULT_SETTINGS,
        )


def test_rule_4_at_most_five_forks_a_day_per_tree() -> None:
    four = [NOW - timedelta(hours=h) for h in (1, 5, 10, 23)]
    check_fork_guards(
        now=NOW, last_fork_of_account=None, tree_fork_times=four, settings=DEFAULT_SETTINGS
    )
    with pytest.raises(ForkDailyLimit) as exc:
        check_fork_guards(
            now=NOW,
            last_fork_of_account=None,
            tree_fork_times=[*four, NOW],
            settings=DEFAULT_SETTINGS,
        )
    assert exc.value.code == "fork_daily_limit"
    old = [*four, NOW - timedelta(hours=25)]
    check_fork_guards(
        now=NOW, last_fork_of_account=None, tree_fork_times=old, settings=DEFAULT_SETTINGS
    )
