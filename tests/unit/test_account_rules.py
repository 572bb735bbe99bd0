"""Sections 1 and 2 of docs/rules.md: account types, statuses, money and the ledger."""

import re
from decimal import Decimal as D
from pathlib import Path
from uuid import uuid4

import pytest

from services.account.domain import (
    TYPE_RULES,
    Account,
    AccountClosed,
    AccountConfig,
    AccountError,
    AccountNotActive,
    AccountStatus,
    AccountType,
    BalanceNotZero,
    InsufficientFunds,
    InvalidAmount,
    InvalidTransition,
    Reinvestment,
    TransactionType,
    Weekday,
    WithdrawalForbidden,
    decide_close,
    decide_deposit,
    decide_status_change,
    decide_withdrawal,
    rejection_codes,
)

GEN, REV, COM = AccountType.GENERATION, AccountType.REVENUE, AccountType.COMPOUNDING
S = AccountStatus


def account(
    type_: AccountType = REV,
    balance: str = "100000.00",
    contributed: str | None = None,
    status: AccountStatus = S.ACTIVE,
    buffer_pct: str = "5",
) -> Account:
    return Account(
        id=uuid4(),
        portfolio_id=uuid4(),
        type=type_,
        status=status,
        balance=D(balance),
        contributed_capital=D(contributed if contributed is not None else balance),
        baseline=D(contributed if contributed is not None else balance),
        config=AccountConfig.for_type(type_, cash_buffer_pct=D(buffer_pct)),
    )


# --- section 1: the three account types -------------------------------------------------


def test_rule_1_type_table_matches_the_rules() -> None:
    gen, rev, com = TYPE_RULES[GEN], TYPE_RULES[REV], TYPE_RULES[COM]
    assert (gen.allocation_pct, rev.allocation_pct, com.allocation_pct) == (D(40), D(30), D(30))
    assert (gen.delta_min, gen.delta_max) == (D(40), D(50))
    assert (rev.delta_min, rev.delta_max) == (D(30), D(40))
    assert (com.delta_min, com.delta_max) == (D(20), D(30))
    assert gen.entry_days == (Weekday.THURSDAY,)
    assert rev.entry_days == com.entry_days == (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY)
    assert (gen.target_weekly_return_pct, rev.target_weekly_return_pct) == (D("1.5"), D("1.0"))
    assert com.target_weekly_return_pct == D("0.5")
    assert (gen.position_sizing_pct, rev.position_sizing_pct, com.position_sizing_pct) == (
        D(90),
        D(90),
        D(85),
    )
    assert (gen.max_drawdown_pct, rev.max_drawdown_pct, com.max_drawdown_pct) == (
        D(15),
        D(10),
        D(7),
    )
    assert gen.reinvestment is Reinvestment.WEEKLY
    assert rev.reinvestment is com.reinvestment is Reinvestment.QUARTERLY
    assert all((r.contracts_pct, r.leaps_pct) == (D(75), D(25)) for r in TYPE_RULES.values())
    assert all(r.cash_buffer_pct == 5 for r in TYPE_RULES.values())


def test_rule_1_only_gen_acc_forks_and_only_com_acc_never_withdraws() -> None:
    assert [t for t, r in TYPE_RULES.items() if r.can_fork] == [GEN]
    assert [t for t, r in TYPE_RULES.items() if not r.withdrawals_allowed] == [COM]


def test_rule_1_defaults_can_be_overridden_by_configuration() -> None:
    config = AccountConfig.for_type(GEN, cash_buffer_pct=D("8"), delta_min=D("42"))
    assert (config.cash_buffer_pct, config.delta_min, config.delta_max) == (D(8), D(42), D(50))
    assert config.fork_threshold == D("50000") and config.merge_threshold == D("500000")


def test_rule_1_vocabularies_are_exactly_the_documented_ones() -> None:
    assert [t.value for t in AccountType] == ["generation", "revenue", "compounding"]
    assert {s.value for s in AccountStatus} == {
        "active",
        "inactive",
        "suspended",
        "closed",
        "forking",
        "merging",
        "merged",
    }
    assert {t.value for t in TransactionType} == {
        "deposit",
        "withdrawal",
        "trade_premium",
        "trade_assignment",
        "trade_shares",
        "fee",
        "reinvestment",
        "fork_transfer",
        "merge_transfer",
        "cash_buffer_adjustment",
    }


def test_rule_1_com_acc_refuses_every_withdrawal() -> None:
    com = account(COM, balance="1000000.00")
    with pytest.raises(WithdrawalForbidden) as err:
        decide_withdrawal(com, D("0.01"))
    assert err.value.code == "withdrawal_forbidden"


@pytest.mark.parametrize("status", [S.INACTIVE, S.SUSPENDED, S.FORKING, S.MERGING])
def test_rule_1_only_active_accounts_take_deposits_and_withdrawals(status: S) -> None:
    acc = account(GEN, status=status)
    with pytest.raises(AccountNotActive):
        decide_deposit(acc, D("10.00"))
    with pytest.raises(AccountNotActive):
        decide_withdrawal(acc, D("10.00"))


@pytest.mark.parametrize("status", [S.CLOSED, S.MERGED])
def test_rule_1_closed_and_merged_are_final(status: S) -> None:
    acc = account(GEN, balance="0.00", status=status)
    with pytest.raises(AccountClosed) as err:
        decide_deposit(acc, D("10.00"))
    assert err.value.code == "account_closed"
    for target in (S.ACTIVE, S.INACTIVE, S.SUSPENDED):
        with pytest.raises(AccountClosed):
            decide_status_change(acc, target)


@pytest.mark.parametrize("target", [S.FORKING, S.MERGING, S.MERGED])
def test_rule_1_transient_statuses_are_not_settable_by_a_user(target: S) -> None:
    with pytest.raises(InvalidTransition) as err:
        decide_status_change(account(GEN), target)
    assert err.value.code == "invalid_status_transition"


def test_rule_1_the_system_moves_through_forking_and_merging() -> None:
    acc = account(GEN)
    assert decide_status_change(acc, S.FORKING, by_system=True) is S.FORKING
    forking = account(GEN, status=S.FORKING)
    assert decide_status_change(forking, S.ACTIVE, by_system=True) is S.ACTIVE
    merging = account(GEN, status=S.MERGING)
    assert decide_status_change(merging, S.MERGED, by_system=True) is S.MERGED
    with pytest.raises(InvalidTransition):
        decide_status_change(account(GEN, status=S.SUSPENDED), S.FORKING, by_system=True)


def test_rule_1_user_status_changes_follow_the_transition_table() -> None:
    assert decide_status_change(account(GEN), S.SUSPENDED) is S.SUSPENDED
    assert decide_status_change(account(GEN, status=S.SUSPENDED), S.ACTIVE) is S.ACTIVE
    assert decide_status_change(account(GEN, status=S.INACTIVE), S.ACTIVE) is S.ACTIVE
    with pytest.raises(InvalidTransition):
        decide_status_change(account(GEN), S.ACTIVE)  # already active
    with pytest.raises(InvalidTransition):
        decide_status_change(account(GEN, status=S.FORKING), S.INACTIVE, by_system=True)


def test_rule_1_closing_refuses_a_non_zero_balance() -> None:
    with pytest.raises(BalanceNotZero) as err:
        decide_close(account(REV, balance="0.01"))
    assert err.value.code == "balance_not_zero"
    with pytest.raises(BalanceNotZero):
        decide_status_change(account(REV, balance="5.00"), S.CLOSED)
    assert decide_close(account(REV, balance="0.00", contributed="100.00")) is S.CLOSED
    assert decide_status_change(account(REV, balance="0", status=S.SUSPENDED), S.CLOSED) is S.CLOSED


def test_rule_1_every_rejection_code_is_snake_case_and_documented_for_users() -> None:
    docs = Path(__file__).parents[2] / "docs"
    readme = "".join(f.read_text() for f in sorted(docs.rglob("*.md")))
    codes = rejection_codes()
    assert {"insufficient_funds", "fork_cooling_period", "already_reinvested"} <= set(codes)
    for code in codes:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code
        assert f"`{code}`" in readme, f"docs/ does not list rejection code {code}"
    assert all(issubclass(e, AccountError) for e in (InsufficientFunds, InvalidAmount))
