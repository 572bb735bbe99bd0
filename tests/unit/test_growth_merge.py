"""docs/rules.md section 5: the merge decision (pure)."""

import uuid
from decimal import Decimal

import pytest

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    TransactionType,
)
from services.account.domain.growth import MergeBlocked, carry, merge_due, plan_merge
from services.account.domain.positions import Contract, Holding

D = Decimal
P = uuid.uuid4()


def acc(type_: AccountType, balance: str, status: AccountStatus = AccountStatus.ACTIVE) -> Account:
    return Account(
        id=uuid.uuid4(),
        portfolio_id=P,
        type=type_,
        status=status,
        balance=D(balance),
        contributed_capital=D(balance),
        baseline=D(balance),
        config=AccountConfig.for_type(type_),
    )


def test_rule_5_child_portfolio_merges_when_its_total_reaches_500k() -> None:
    assert not merge_due(
        [acc(AccountType.GENERATION, "250000.00"), acc(AccountType.COMPOUNDING, "249999.99")]
    )
    assert merge_due(
        [acc(AccountType.GENERATION, "250000.00"), acc(AccountType.COMPOUNDING, "250000.00")]
    )


def test_rule_5_merge_empties_every_child_account_and_marks_it_merged() -> None:
    gen, com = acc(AccountType.GENERATION, "300000.10"), acc(AccountType.COMPOUNDING, "200000.00")
    plan = plan_merge([gen, com])
    assert plan.total == D("500000.10")
    assert [(d.type, d.amount, d.balance_after) for d in plan.debits] == [
        (TransactionType.MERGE_TRANSFER, D("-300000.10"), D("0.00")),
        (TransactionType.MERGE_TRANSFER, D("-200000.00"), D("0.00")),
    ]
    assert plan.statuses == (AccountStatus.MERGED, AccountStatus.MERGED)


def test_rule_5_a_suspended_child_account_blocks_the_merge() -> None:
    with pytest.raises(MergeBlocked) as exc:
        plan_merge([acc(AccountType.GENERATION, "1.00", AccountStatus.SUSPENDED)])
    assert exc.value.code == "merge_blocked"


def test_rule_5_merged_accounts_do_not_count_again() -> None:
    assert not merge_due([acc(AccountType.GENERATION, "600000.00", AccountStatus.MERGED)])


PUT = Contract("AAPL", "put", D("180"), None, 100)


def test_rule_5_merge_carries_positions_whole_into_the_target() -> None:
    shares = Holding(Contract("AAPL"), 100, D("18300.00"))
    target = {"AAPL": Holding(Contract("AAPL"), 200, D("35000.00"))}
    done = carry([shares, Holding(PUT, -2, D("-300.00"))], target)
    assert [(m.quantity, m.cost, m.after.quantity, m.after.cost) for m in done.out] == [
        (-100, D("-18300.00"), 0, D(0)),
        (2, D("300.00"), 0, D(0)),
    ]
    assert [(m.quantity, m.cost, m.after.quantity, m.after.cost) for m in done.into] == [
        (100, D("18300.00"), 300, D("53300.00")),
        (-2, D("-300.00"), -2, D("-300.00")),
    ]
    assert done.target[PUT.key] == Holding(PUT, -2, D("-300.00"))
    assert target["AAPL"].quantity == 200  # the caller's map is left as it was


def test_rule_5_merge_into_the_other_side_of_a_contract_is_blocked() -> None:
    with pytest.raises(MergeBlocked) as exc:
        carry([Holding(PUT, 1, D("50.00"))], {PUT.key: Holding(PUT, -2, D("-300.00"))})
    assert exc.value.code == "merge_blocked"
