"""Payloads of the account commands and queries (docs/contract.md), validated at the boundary."""

from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.money import Money, PositiveMoney
from shared.contracts.vocabulary import AccountTypeName, SettableStatus

__all__ = ["AccountTypeName"]  # spelled in vocabulary.py; named here for the payloads' readers
Text = Field(default="", max_length=500)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountRef(Payload):
    account_id: UUID


class InitializeSystem(Payload):
    total_capital: PositiveMoney
    template: str | None = Field(default=None, max_length=40)
    strategy: str | None = Field(default=None, max_length=40)
    allocation: dict[AccountTypeName, Money] | None = None
    cash_buffer_pct: Money | None = None
    risk_profile: str | None = Field(default=None, max_length=40)
    name: str = Field(default="", max_length=200)


class CreateAccount(Payload):
    type: AccountTypeName
    name: str = Field(default="", max_length=200)
    initial_balance: Money = Decimal("0.00")
    portfolio_id: UUID | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class UpdateAccount(AccountRef):
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)


class MoveMoney(AccountRef):
    amount: PositiveMoney
    description: str = Text
    reference: str | None = Field(default=None, max_length=200)


class SetStatus(AccountRef):
    status: SettableStatus
    reason: str = Text


class CloseAccount(AccountRef):
    reason: str = Text


class ListAccounts(Payload):
    portfolio_id: UUID | None = None
    type: AccountTypeName | None = None
    status: str | None = Field(default=None, max_length=20)
    limit: int = Field(default=100, ge=1, le=1000)
    after: UUID | None = None  # keyset paging: the last id of the previous page


class History(AccountRef):
    type: str | None = Field(default=None, max_length=40)
    limit: int = Field(default=50, ge=1, le=1000)
    before: int | None = Field(default=None, ge=1)  # keyset paging: transactions older than this id
    until: AwareDatetime | None = None  # only transactions dated (business time) up to then


class Empty(Payload):
    pass


# Growth (docs/rules.md sections 4-7)

Quarter = Field(default=None, pattern=r"^\d{4}-Q[1-4]$")


class ForkAccount(AccountRef):
    reason: str = Text


class PortfolioRef(Payload):
    portfolio_id: UUID


class MergePortfolio(PortfolioRef):
    reason: str = Text


class Reinvest(Payload):
    account_id: UUID | None = None  # none: every Rev-Acc and Com-Acc
    quarter: str | None = Quarter  # none: the latest period that has fallen due


class UpdateConfig(Payload):
    """Growth policy and account settings, validated as a whole and applied all or nothing."""

    growth: dict[str, Any] = Field(default_factory=dict)
    # AccountConfig fields, applied to every live account (of `account_type`, if given)
    accounts: dict[str, Any] = Field(default_factory=dict)
    account_type: AccountTypeName | None = None  # limit `accounts` to one type
    # Section 3 catalog entries by name (1-40 of a-z 0-9 _), each added or replaced whole;
    # null removes a custom entry (built-ins can be replaced, not removed)
    templates: dict[str, Any] = Field(
        default_factory=dict,
        description="name -> {allocation: {generation, revenue, compounding}, cash_buffer_pct,"
        " risk_profile, risk_level?, expected_return_pct?} or null",
    )
    strategies: dict[str, Any] = Field(
        default_factory=dict,
        description="name -> {allocation: {generation, revenue, compounding}, cash_buffer_pct}"
        " or null",
    )


# Positions, value and corrections (section 11)


class AsOf(AccountRef):
    at: AwareDatetime  # cash, positions and value as they were at this time


class ReverseTransaction(Payload):
    transaction_id: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=500)
