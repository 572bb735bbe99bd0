"""Pure decisions on one account (docs/rules.md sections 1 and 2): check the rules, describe the
effect."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from .enums import AccountStatus, AccountType, TransactionType
from .errors import (
    AccountClosed,
    AccountNotActive,
    AccountTypeExists,
    BalanceNotZero,
    InsufficientFunds,
    InvalidAmount,
    InvalidTransition,
    UnknownPortfolio,
    WithdrawalForbidden,
)
from .ledger import BalanceChange, change
from .model import Account

S = AccountStatus

# Who may move where. forking/merging are entered and left only by the fork/merge engine;
# closed and merged are final. A transition to the same status is refused, not ignored:
# redelivery is the inbox's business, a repeated user command is a caller error.
ALLOWED_TRANSITIONS: Mapping[AccountStatus, frozenset[AccountStatus]] = MappingProxyType(
    {
        S.ACTIVE: frozenset({S.INACTIVE, S.SUSPENDED, S.CLOSED, S.FORKING, S.MERGING}),
        S.INACTIVE: frozenset({S.ACTIVE, S.SUSPENDED, S.CLOSED}),
        S.SUSPENDED: frozenset({S.ACTIVE, S.INACTIVE, S.CLOSED}),
        S.FORKING: frozenset({S.ACTIVE}),
        S.MERGING: frozenset({S.ACTIVE, S.MERGED}),
        S.CLOSED: frozenset(),
        S.MERGED: frozenset(),
    }
)
USER_SETTABLE: frozenset[AccountStatus] = frozenset({S.ACTIVE, S.INACTIVE, S.SUSPENDED, S.CLOSED})
SYSTEM_ONLY: frozenset[AccountStatus] = frozenset({S.FORKING, S.MERGING, S.MERGED})
FINAL: frozenset[AccountStatus] = frozenset({S.CLOSED, S.MERGED})


def ensure_active(account: Account) -> None:
    """Only active accounts take trades, deposits and withdrawals."""
    if account.status in FINAL:
        raise AccountClosed(f"account {account.id} is {account.status.value}")
    if account.status is not S.ACTIVE:
        raise AccountNotActive(f"account {account.id} is {account.status.value}, not active")


def ensure_open(account: Account) -> None:
    """A closed or merged account keeps its settings: final is final."""
    if account.status in FINAL:
        raise AccountClosed(f"account {account.id} is {account.status.value}")


def check_new_account(
    account_type: AccountType, initial_balance: Decimal, *, portfolio: str, held: set[str] | None
) -> None:
    """A new account starts at zero or more, in an existing portfolio without one of its type.

    `held` is the portfolio's account types, None when there is no such portfolio.
    """
    if initial_balance < 0:
        raise InvalidAmount("initial_balance must not be negative")
    if held is None:
        raise UnknownPortfolio(f"no portfolio {portfolio}")
    if account_type.value in held:
        raise AccountTypeExists(f"portfolio {portfolio} already has a {account_type.value} account")


def decide_deposit(account: Account, amount: Decimal) -> BalanceChange:
    """`amount` is positive, in cents: the command's payload model (PositiveMoney) made it so."""
    ensure_active(account)
    return change(account, TransactionType.DEPOSIT, amount)


def decide_withdrawal(account: Account, amount: Decimal) -> BalanceChange:
    """At most `available`: the cash buffer is protected. A Com-Acc refuses every withdrawal.
    `amount` is positive, in cents (PositiveMoney)."""
    ensure_active(account)
    if not account.rules.withdrawals_allowed:
        raise WithdrawalForbidden(f"{account.type.value} accounts never allow withdrawals")
    if amount > account.available:
        raise InsufficientFunds(
            f"withdrawal of {amount} exceeds available {account.available} "
            f"(balance {account.balance}, cash buffer {account.cash_buffer})"
        )
    return change(account, TransactionType.WITHDRAWAL, -amount)


def decide_close(account: Account) -> AccountStatus:
    """Closing is final, so the account must be empty first."""
    _check_transition(account, S.CLOSED)
    if account.balance != 0:
        raise BalanceNotZero(f"account {account.id} still holds {account.balance}")
    return S.CLOSED


def decide_status_change(
    account: Account, new_status: AccountStatus, *, by_system: bool = False
) -> AccountStatus:
    """Return `new_status` if the move is allowed; users cannot set transient statuses."""
    if new_status in SYSTEM_ONLY and not by_system:
        raise InvalidTransition(f"status {new_status.value} is set by the system only")
    if new_status is S.CLOSED:
        return decide_close(account)
    _check_transition(account, new_status)
    return new_status


def _check_transition(account: Account, new_status: AccountStatus) -> None:
    if account.status in FINAL:
        raise AccountClosed(f"account {account.id} is {account.status.value}: final")
    if new_status not in ALLOWED_TRANSITIONS[account.status]:
        raise InvalidTransition(
            f"cannot move account {account.id} from {account.status.value} to {new_status.value}"
        )
