"""The words of the account contract (docs/rules.md section 1): account types, statuses,
transaction types, and the codes the account service refuses a command with.

Spelled once, here: the account service's domain, its commands' payloads, the console and the
CLI all take them from this module, so a new word cannot reach one of them and not the others.
"""

from enum import StrEnum
from typing import Literal, get_args


class AccountType(StrEnum):
    GENERATION = "generation"
    REVENUE = "revenue"
    COMPOUNDING = "compounding"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    FORKING = "forking"
    MERGING = "merging"
    MERGED = "merged"


class TransactionType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRADE_PREMIUM = "trade_premium"
    TRADE_ASSIGNMENT = "trade_assignment"
    TRADE_SHARES = "trade_shares"  # shares bought or sold by a fill (not by an assignment)
    FEE = "fee"
    REINVESTMENT = "reinvestment"
    FORK_TRANSFER = "fork_transfer"
    MERGE_TRANSFER = "merge_transfer"
    CASH_BUFFER_ADJUSTMENT = "cash_buffer_adjustment"


# Payload fields spell the same words as Literals: their JSON Schemas list the values inline
# (an enum class would move them into `$defs`), and mypy checks both; tests tie them together.
AccountTypeName = Literal["generation", "revenue", "compounding"]
# The statuses a set_status command may ask for; the others are the platform's to set.
SettableStatus = Literal["active", "inactive", "suspended", "closed"]
SETTABLE_STATUSES: tuple[AccountStatus, ...] = tuple(
    AccountStatus(s) for s in get_args(SettableStatus)
)


class Refusal(StrEnum):
    """The `code` of an `alluse.command.rejected` event for a rule of the account service's
    (the platform's own checks add `forbidden`, `unknown_type`, `rate_limited` and the like)."""

    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_NOT_ACTIVE = "account_not_active"
    ACCOUNT_TYPE_EXISTS = "account_type_exists"
    ALREADY_REINVESTED = "already_reinvested"
    ALREADY_REVERSED = "already_reversed"
    BALANCE_NOT_ZERO = "balance_not_zero"
    FILL_CONFLICT = "fill_conflict"
    FORK_COLLATERAL_LOCKED = "fork_collateral_locked"
    FORK_COOLING_PERIOD = "fork_cooling_period"
    FORK_DAILY_LIMIT = "fork_daily_limit"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_CONFIGURATION = "invalid_configuration"
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_STATUS_TRANSITION = "invalid_status_transition"
    MERGE_BLOCKED = "merge_blocked"
    NO_HISTORY = "no_history"
    NOT_A_CHILD_PORTFOLIO = "not_a_child_portfolio"
    NOT_A_REINVESTING_ACCOUNT = "not_a_reinvesting_account"
    NOT_FORK_ELIGIBLE = "not_fork_eligible"
    POSITION_NOT_OPEN = "position_not_open"
    QUARTER_NOT_DUE = "quarter_not_due"
    REVERSAL_NOT_REVERSIBLE = "reversal_not_reversible"
    TRANSFER_NOT_REVERSIBLE = "transfer_not_reversible"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_PORTFOLIO = "unknown_portfolio"
    UNKNOWN_QUARTER = "unknown_quarter"
    UNKNOWN_TRANSACTION = "unknown_transaction"
    WITHDRAWAL_FORBIDDEN = "withdrawal_forbidden"
