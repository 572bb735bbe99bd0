"""Section 2 of docs/rules.md: exact money, the cash buffer, withdrawals, the ledger."""

from decimal import Decimal as D
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    InsufficientFunds,
    TransactionType,
    apply_change,
    change,
    check_integrity,
    decide_deposit,
    decide_withdrawal,
    recompute_balance,
    recompute_contributed,
)
from shared.contracts import money
from shared.contracts.account import MoveMoney

GEN, REV, COM = AccountType.GENERATION, AccountType.REVENUE, AccountType.COMPOUNDING
T = TransactionType


def account(
    type_: AccountType = REV, balance: str = "100000.00", contributed: str | None = None
) -> Account:
    funded = D(contributed if contributed is not None else balance)
    return Account(
        id=uuid4(),
        portfolio_id=uuid4(),
        type=type_,
        status=AccountStatus.ACTIVE,
        balance=D(balance),
        contributed_capital=funded,
        baseline=funded,
        config=AccountConfig.for_type(type_),
    )


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("0", "invalid_payload"),
        ("-5.00", "invalid_payload"),
        ("10.001", "invalid_amount"),
        ("NaN", "invalid_amount"),
        ("Infinity", "invalid_amount"),
        (10.5, "invalid_amount"),
        (10, "invalid_amount"),
        ("1e3", "invalid_amount"),
    ],
)
def test_rule_2_amounts_are_positive_decimal_strings_with_cents(bad: object, code: str) -> None:
    """Checked once, where a command's amount comes in (its payload model): the domain takes it."""
    with pytest.raises(ValidationError) as err:
        MoveMoney(account_id=uuid4(), amount=bad)
    assert ("invalid_amount" if money.amount_invalid(err.value) else "invalid_payload") == code


def test_rule_2_amounts_are_normalised_to_cents() -> None:
    assert str(MoveMoney(account_id=uuid4(), amount="1250").amount) == "1250.00"
    effect = decide_deposit(account(), MoveMoney(account_id=uuid4(), amount="12.5").amount)
    assert str(effect.amount) == "12.50"


def test_rule_2_cash_buffer_is_percent_of_contributed_capital() -> None:
    acc = account(GEN, balance="100000.00")
    assert acc.cash_buffer == D("5000.00")
    assert acc.available == D("95000.00")


def test_rule_2_trading_income_does_not_move_the_cash_buffer() -> None:
    acc = account(GEN, balance="100000.00")
    richer = apply_change(acc, change(acc, T.TRADE_PREMIUM, D("20000.00")))
    assert richer.balance == D("120000.00")
    assert richer.contributed_capital == D("100000.00")
    assert richer.cash_buffer == D("5000.00")
    assert richer.available == D("115000.00")


def test_rule_2_deposits_and_withdrawals_move_contributed_capital() -> None:
    acc = account(REV, balance="100000.00")
    after_deposit = apply_change(acc, decide_deposit(acc, D("20000.00")))
    assert after_deposit.contributed_capital == D("120000.00")
    assert after_deposit.cash_buffer == D("6000.00")
    after_withdrawal = apply_change(after_deposit, decide_withdrawal(after_deposit, D("10000.00")))
    assert after_withdrawal.contributed_capital == D("110000.00")
    assert after_withdrawal.cash_buffer == D("5500.00")


def test_rule_2_available_is_never_below_zero() -> None:
    acc = account(REV, balance="3000.00", contributed="100000.00")  # losses ate into the buffer
    assert acc.cash_buffer == D("5000.00")
    assert acc.available == D("0.00")


def test_rule_2_withdrawal_cannot_touch_cash_buffer() -> None:
    acc = account(REV, balance="100000.00")
    effect = decide_withdrawal(acc, D("95000.00"))  # exactly `available`
    assert effect.amount == D("-95000.00") and effect.balance_after == D("5000.00")
    with pytest.raises(InsufficientFunds) as err:
        decide_withdrawal(acc, D("95000.01"))
    assert err.value.code == "insufficient_funds"


def test_rule_2_withdrawal_is_recorded_as_a_signed_transaction() -> None:
    acc = account(GEN, balance="100000.00")
    effect = decide_withdrawal(acc, D("250.00"))
    assert (effect.type, effect.amount, effect.account_id) == (T.WITHDRAWAL, D("-250.00"), acc.id)
    assert effect.balance_after == D("99750.00")


def test_rule_2_balance_equals_sum_of_transactions_integrity_check() -> None:
    acc = account(GEN, balance="0.00", contributed="0.00")
    amounts = []
    for tx, amount in [(T.DEPOSIT, "1000.00"), (T.TRADE_PREMIUM, "125.50"), (T.FEE, "-1.30")]:
        effect = change(acc, tx, D(amount))
        acc = apply_change(acc, effect)
        amounts.append(effect.amount)
    acc = apply_change(acc, decide_withdrawal(acc, D("100.00")))
    amounts.append(D("-100.00"))
    report = check_integrity(acc.balance, amounts)
    assert report.ok and report.ledger_balance == D("1024.20") == recompute_balance(amounts)
    broken = check_integrity(D("1024.21"), amounts)
    assert not broken.ok and broken.difference == D("0.01")


def test_rule_2_contributed_capital_can_be_rebuilt_from_the_ledger() -> None:
    rows = [
        (T.DEPOSIT, D("1000.00")),
        (T.TRADE_PREMIUM, D("500.00")),
        (T.WITHDRAWAL, D("-200.00")),
        (T.FORK_TRANSFER, D("300.00")),  # funding received from a fork counts
        (T.FORK_TRANSFER, D("-50.00")),  # surplus sent out by a fork does not
        (T.FEE, D("-5.00")),
    ]
    assert recompute_contributed(rows) == D("1100.00")


def test_rule_2_deposit_raises_baseline_and_withdrawal_takes_surplus_first() -> None:
    acc = account(GEN, balance="110000.00", contributed="100000.00")
    assert apply_change(acc, decide_deposit(acc, D("5000.00"))).baseline == D("105000.00")
    profit_only = apply_change(acc, decide_withdrawal(acc, D("10000.00")))
    assert profit_only.baseline == D("100000.00")
    into_capital = apply_change(acc, decide_withdrawal(acc, D("15000.00")))
    assert into_capital.baseline == D("95000.00")


cents = st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2)


@given(balance=cents, contributed=cents, amount=cents)
def test_rule_2_property_withdrawal_never_leaves_balance_below_buffer(
    balance: D, contributed: D, amount: D
) -> None:
    acc = account(REV, balance=str(balance), contributed=str(contributed))
    try:
        effect = decide_withdrawal(acc, amount)
    except InsufficientFunds:
        assert amount > acc.available
    else:
        assert effect.balance_after >= acc.cash_buffer
        assert effect.balance_after == balance - amount


@given(amounts=st.lists(cents, min_size=1, max_size=20))
def test_rule_2_property_deposits_keep_balance_equal_to_ledger(amounts: list[D]) -> None:
    acc = account(GEN, balance="0.00", contributed="0.00")
    written = []
    for amount in amounts:
        effect = decide_deposit(acc, amount)
        acc = apply_change(acc, effect)
        written.append(effect.amount)
    assert check_integrity(acc.balance, written).ok
    assert acc.contributed_capital == sum(amounts)


def test_a_canonical_amount_out_of_range_is_an_invalid_amount() -> None:
    with pytest.raises(money.InvalidAmount, match="out of range"):
        money.parse_money("1000000000000.00")
