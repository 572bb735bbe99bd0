"""The vocabularies of docs/rules.md section 1: account types, statuses, transaction types, days."""

from __future__ import annotations

from enum import StrEnum


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


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


class Reinvestment(StrEnum):
    WEEKLY = "weekly"
    QUARTERLY = "quarterly"


TRADING_DAYS = frozenset(
    {Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY}
)
