"""Per-account configuration and account state, with the money rules of docs/rules.md section 2."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

from .enums import AccountStatus, AccountType, Reinvestment, Weekday
from .money import ZERO, to_cents
from .rules import TYPE_RULES, TypeRules

DEFAULT_FORK_THRESHOLD = Decimal("50000.00")
DEFAULT_MERGE_THRESHOLD = Decimal("500000.00")


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """The operator-tunable settings of one account (validate with `validate_config`).

    Whether an account may withdraw or fork is not here: that is what its type *is*
    (a Com-Acc that allowed withdrawals would no longer be a Com-Acc).
    """

    allocation_pct: Decimal
    cash_buffer_pct: Decimal
    position_sizing_pct: Decimal
    delta_min: Decimal
    delta_max: Decimal
    target_weekly_return_pct: Decimal
    max_drawdown_pct: Decimal
    entry_days: tuple[Weekday, ...]
    reinvestment: Reinvestment
    contracts_pct: Decimal
    leaps_pct: Decimal
    fork_threshold: Decimal = DEFAULT_FORK_THRESHOLD
    merge_threshold: Decimal = DEFAULT_MERGE_THRESHOLD

    @classmethod
    def for_type(cls, account_type: AccountType, **overrides: Any) -> AccountConfig:
        """Section 1 defaults for `account_type`, with keyword overrides (unvalidated)."""
        r = TYPE_RULES[account_type]
        base = cls(
            allocation_pct=r.allocation_pct,
            cash_buffer_pct=r.cash_buffer_pct,
            position_sizing_pct=r.position_sizing_pct,
            delta_min=r.delta_min,
            delta_max=r.delta_max,
            target_weekly_return_pct=r.target_weekly_return_pct,
            max_drawdown_pct=r.max_drawdown_pct,
            entry_days=r.entry_days,
            reinvestment=r.reinvestment,
            contracts_pct=r.contracts_pct,
            leaps_pct=r.leaps_pct,
        )
        return replace(base, **overrides)


def cash_buffer_for(contributed_capital: Decimal, cash_buffer_pct: Decimal) -> Decimal:
    """Buffer % x contributed capital, in cents (never negative)."""
    return max(ZERO, to_cents(contributed_capital * cash_buffer_pct / 100))


@dataclass(frozen=True, slots=True)
class Account:
    """State of one account as the domain sees it; decisions return new values."""

    id: UUID
    portfolio_id: UUID
    type: AccountType
    status: AccountStatus
    balance: Decimal
    contributed_capital: Decimal
    baseline: Decimal
    config: AccountConfig = field(repr=False)

    @property
    def rules(self) -> TypeRules:
        return TYPE_RULES[self.type]

    @property
    def cash_buffer_pct(self) -> Decimal:
        return self.config.cash_buffer_pct

    @property
    def cash_buffer(self) -> Decimal:
        return cash_buffer_for(self.contributed_capital, self.config.cash_buffer_pct)

    @property
    def available(self) -> Decimal:
        return max(ZERO, self.balance - self.cash_buffer)
