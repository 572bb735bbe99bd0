"""Balance changes and the ledger invariant: balance == sum of the account's transactions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from uuid import UUID

from .enums import TransactionType
from .model import Account
from .money import ZERO

# Transactions that bring capital into an account (its funding) or take it back out.
# Trading income, fees and reinvestment bookings never move contributed capital.
_FUNDING_TYPES = frozenset({TransactionType.FORK_TRANSFER, TransactionType.MERGE_TRANSFER})


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """The effect a decision asks the store to write: one transaction row + new state.

    `amount` is signed: positive credits the account, negative debits it.
    """

    account_id: UUID
    type: TransactionType
    amount: Decimal
    balance_after: Decimal
    contributed_after: Decimal
    baseline_after: Decimal


def contribution_delta(tx_type: TransactionType, amount: Decimal) -> Decimal:
    """How much a transaction moves contributed capital (hence the cash buffer).

    Deposits and withdrawals move it both ways. A fork or merge transfer *into* an account
    funds it, so it counts; a transfer *out* moves surplus (fork) or winds the account up
    (merge), so it does not.
    """
    if tx_type in (TransactionType.DEPOSIT, TransactionType.WITHDRAWAL):
        return amount
    if tx_type in _FUNDING_TYPES and amount > 0:
        return amount
    return ZERO


def change(account: Account, tx_type: TransactionType, amount: Decimal) -> BalanceChange:
    """Describe applying a signed `amount` of `tx_type` to `account` (no rule checks)."""
    balance_after = account.balance + amount
    contributed_after = max(ZERO, account.contributed_capital + contribution_delta(tx_type, amount))
    if tx_type is TransactionType.DEPOSIT:
        baseline_after = account.baseline + amount  # new capital is not surplus to fork
    elif tx_type is TransactionType.WITHDRAWAL:
        baseline_after = min(account.baseline, balance_after)  # surplus is withdrawn first
    else:
        baseline_after = account.baseline
    return BalanceChange(
        account_id=account.id,
        type=tx_type,
        amount=amount,
        balance_after=balance_after,
        contributed_after=contributed_after,
        baseline_after=baseline_after,
    )


def apply_change(account: Account, effect: BalanceChange) -> Account:
    """The account after `effect` has been written."""
    return replace(
        account,
        balance=effect.balance_after,
        contributed_capital=effect.contributed_after,
        baseline=effect.baseline_after,
    )


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    stored_balance: Decimal
    ledger_balance: Decimal

    @property
    def ok(self) -> bool:
        return self.stored_balance == self.ledger_balance

    @property
    def difference(self) -> Decimal:
        return self.stored_balance - self.ledger_balance


def recompute_balance(amounts: Iterable[Decimal]) -> Decimal:
    """The balance the ledger says the account has: the sum of its signed amounts."""
    return sum(amounts, start=ZERO)


def recompute_contributed(transactions: Iterable[tuple[TransactionType, Decimal]]) -> Decimal:
    """Contributed capital rebuilt from (type, signed amount) rows, floored at zero per row."""
    total = ZERO
    for tx_type, amount in transactions:
        total = max(ZERO, total + contribution_delta(tx_type, amount))
    return total


def check_integrity(stored_balance: Decimal, amounts: Iterable[Decimal]) -> IntegrityReport:
    """Compare a stored balance with the sum of the account's transaction amounts."""
    return IntegrityReport(stored_balance=stored_balance, ledger_balance=recompute_balance(amounts))
