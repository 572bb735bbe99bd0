"""Domain errors: what a caller can fix, each with a machine-readable code.

Handlers translate these into rejection events at the boundary; the domain never
knows about streams or HTTP.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.contracts.errors import DomainError, codes


class Problem(NamedTuple):
    """One validation failure, tied to the field that caused it."""

    field: str
    message: str


class AccountError(DomainError):
    """Base of the account service's rule violations; each subclass carries its code."""


class ValidationFailed(AccountError):
    """Every problem found in one configuration, reported at once."""

    code = "invalid_configuration"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class InvalidPayload(ValidationFailed):
    """Every problem found in one payload (e.g. a series to analyse), reported at once."""

    code = "invalid_payload"


class InvalidAmount(AccountError):
    code = "invalid_amount"


class InsufficientFunds(AccountError):
    code = "insufficient_funds"


class WithdrawalForbidden(AccountError):
    code = "withdrawal_forbidden"


class AccountNotActive(AccountError):
    code = "account_not_active"


class AccountClosed(AccountError):
    code = "account_closed"


class InvalidTransition(AccountError):
    code = "invalid_status_transition"


class BalanceNotZero(AccountError):
    code = "balance_not_zero"


class UnknownAccount(AccountError):
    code = "unknown_account"


class UnknownPortfolio(AccountError):
    code = "unknown_portfolio"


class AccountTypeExists(AccountError):
    code = "account_type_exists"


class FillConflict(AccountError):
    code = "fill_conflict"


class NotAReinvestingAccount(AccountError):
    code = "not_a_reinvesting_account"


class AlreadyReinvested(AccountError):
    code = "already_reinvested"


def rejection_codes() -> tuple[str, ...]:
    """Every code an account rule can refuse with, read from the hierarchy (growth's included)."""
    from . import growth, positions, reinvest, reversal  # noqa: F401  (their errors join on import)

    return codes(AccountError)
