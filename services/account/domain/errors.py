"""Domain errors: what a caller can fix, each with a machine-readable code.

Handlers translate these into rejection events at the boundary; the domain never
knows about streams or HTTP.
"""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    """One validation failure, tied to the field that caused it."""

    field: str
    message: str


class DomainError(Exception):
    """Base of every rule violation; `code` is stable, `message` is for humans."""

    code: str = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    """Every problem found in one payload or configuration, reported at once."""

    code = "invalid_configuration"

    def __init__(self, problems: list[Problem], *, code: str = "invalid_configuration") -> None:
        self.problems = tuple(problems)
        self.code = code
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class InvalidAmount(DomainError):
    code = "invalid_amount"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"


class WithdrawalForbidden(DomainError):
    code = "withdrawal_forbidden"


class AccountNotActive(DomainError):
    code = "account_not_active"


class AccountClosed(DomainError):
    code = "account_closed"


class InvalidTransition(DomainError):
    code = "invalid_status_transition"


class BalanceNotZero(DomainError):
    code = "balance_not_zero"


INVALID_CONFIGURATION = "invalid_configuration"
INVALID_PAYLOAD = "invalid_payload"

REJECTION_CODES: tuple[str, ...] = (
    INVALID_CONFIGURATION,
    INVALID_PAYLOAD,
    InvalidAmount.code,
    InsufficientFunds.code,
    WithdrawalForbidden.code,
    AccountNotActive.code,
    AccountClosed.code,
    InvalidTransition.code,
    BalanceNotZero.code,
)
