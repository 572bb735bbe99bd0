"""docs/rules.md section 1: the per-type rules table, the defaults every account configuration
starts from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from .enums import AccountType, Reinvestment, Weekday

_MON_WED = (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY)


@dataclass(frozen=True, slots=True)
class TypeRules:
    """Section 1 defaults for one account type; percentages are in percent (40 = 40 %)."""

    allocation_pct: Decimal
    delta_min: Decimal
    delta_max: Decimal
    entry_days: tuple[Weekday, ...]
    target_weekly_return_pct: Decimal
    position_sizing_pct: Decimal
    max_drawdown_pct: Decimal
    reinvestment: Reinvestment
    contracts_pct: Decimal
    leaps_pct: Decimal
    withdrawals_allowed: bool
    can_fork: bool
    cash_buffer_pct: Decimal


TYPE_RULES: Mapping[AccountType, TypeRules] = MappingProxyType(
    {
        AccountType.GENERATION: TypeRules(
            allocation_pct=Decimal(40),
            delta_min=Decimal(40),
            delta_max=Decimal(50),
            entry_days=(Weekday.THURSDAY,),
            target_weekly_return_pct=Decimal("1.5"),
            position_sizing_pct=Decimal(90),
            max_drawdown_pct=Decimal(15),
            reinvestment=Reinvestment.WEEKLY,
            contracts_pct=Decimal(75),
            leaps_pct=Decimal(25),
            withdrawals_allowed=True,
            can_fork=True,
            cash_buffer_pct=Decimal(5),
        ),
        AccountType.REVENUE: TypeRules(
            allocation_pct=Decimal(30),
            delta_min=Decimal(30),
            delta_max=Decimal(40),
            entry_days=_MON_WED,
            target_weekly_return_pct=Decimal("1.0"),
            position_sizing_pct=Decimal(90),
            max_drawdown_pct=Decimal(10),
            reinvestment=Reinvestment.QUARTERLY,
            contracts_pct=Decimal(75),
            leaps_pct=Decimal(25),
            withdrawals_allowed=True,
            can_fork=False,
            cash_buffer_pct=Decimal(5),
        ),
        AccountType.COMPOUNDING: TypeRules(
            allocation_pct=Decimal(30),
            delta_min=Decimal(20),
            delta_max=Decimal(30),
            entry_days=_MON_WED,
            target_weekly_return_pct=Decimal("0.5"),
            position_sizing_pct=Decimal(85),
            max_drawdown_pct=Decimal(7),
            reinvestment=Reinvestment.QUARTERLY,
            contracts_pct=Decimal(75),
            leaps_pct=Decimal(25),
            withdrawals_allowed=False,
            can_fork=False,
            cash_buffer_pct=Decimal(5),
        ),
    }
)
