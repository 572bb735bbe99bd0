"""Domain errors: what a caller can fix, each with a machine-readable code.

Handlers translate these into rejection events at the boundary; the domain never
knows about streams or HTTP.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.contracts.errors import DomainError, codes
from shared.contracts.vocabulary import Refusal


class Problem(NamedTuple):
    """One validation failure, tied to the field that caused it."""

    field: str
    message: str


class AccountError(DomainError):
    """Base of the account service's rule violations; each subclass carries its code."""


class ValidationFailed(AccountError):
    """Every problem found in one configuration, reported at once."""

    code = Refusal.INVALID_CONFIGURATION

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class InvalidPayload(ValidationFailed):
    """Every problem found in one payload (e.g. a series to analyse), reported at once."""

    code = Refusal.INVALID_PAYLOAD


class InvalidAmount(AccountError):
    code = Refusal.INVALID_AMOUNT


class InsufficientFunds(AccountError):
    code = Refusal.INSUFFICIENT_FUNDS


class WithdrawalForbidden(AccountError):
    code = Refusal.WITHDRAWAL_FORBIDDEN


class AccountNotActive(AccountError):
    code = Refusal.ACCOUNT_NOT_ACTIVE


class AccountClosed(AccountError):
    code = Refusal.ACCOUNT_CLOSED


class InvalidTransition(AccountError):
    code = Refusal.INVALID_STATUS_TRANSITION


class BalanceNotZero(AccountError):
    code = Refusal.BALANCE_NOT_ZERO


class UnknownAccount(AccountError):
    code = Refusal.UNKNOWN_ACCOUNT


class UnknownPortfolio(AccountError):
    code = Refusal.UNKNOWN_PORTFOLIO


class AccountTypeExists(AccountError):
    code = Refusal.ACCOUNT_TYPE_EXISTS


class FillConflict(AccountError):
    code = Refusal.FILL_CONFLICT


class NotAReinvestingAccount(AccountError):
    code = Refusal.NOT_A_REINVESTING_ACCOUNT


class AlreadyReinvested(AccountError):
    code = Refusal.ALREADY_REINVESTED


def rejection_codes() -> tuple[str, ...]:
    """Every code an account rule can refuse with, read from the hierarchy (growth's included)."""
    from . import growth, positions, reinvest, reversal  # noqa: F401  (their errors join on import)

    return codes(AccountError)
