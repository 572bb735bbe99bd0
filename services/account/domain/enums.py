"""The vocabularies of docs/rules.md section 1: account types, statuses and transaction types
are the contract's (shared/contracts/vocabulary.py: consumers and the console spell them too);
days and reinvestment cadences are the domain's own."""

from __future__ import annotations

from enum import StrEnum

from shared.contracts.vocabulary import AccountStatus, AccountType, TransactionType

__all__ = [
    "TRADING_DAYS",
    "AccountStatus",
    "AccountType",
    "Reinvestment",
    "TransactionType",
    "Weekday",
]


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
