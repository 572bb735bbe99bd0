"""docs/rules.md section 3 catalogues: templates, their risk profiles, and allocation strategies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from .enums import AccountType


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Allocation:
    """Shares of portfolio capital per account type, in percent."""

    generation: Decimal
    revenue: Decimal
    compounding: Decimal

    def share(self, account_type: AccountType) -> Decimal:
        return {
            AccountType.GENERATION: self.generation,
            AccountType.REVENUE: self.revenue,
            AccountType.COMPOUNDING: self.compounding,
        }[account_type]

    @property
    def total(self) -> Decimal:
        return self.generation + self.revenue + self.compounding


def allocation(gen: str | int, rev: str | int, com: str | int) -> Allocation:
    return Allocation(Decimal(gen), Decimal(rev), Decimal(com))


@dataclass(frozen=True, slots=True)
class RiskProfile:
    name: str
    max_drawdown_pct: Decimal
    position_sizing_pct: Decimal
    atr_adjustment: Decimal
    stop_loss_pct: Decimal
    take_profit_pct: Decimal
    max_positions: int


def _profile(name: str, dd: str, size: str, atr: str, stop: str, take: str, n: int) -> RiskProfile:
    return RiskProfile(
        name, Decimal(dd), Decimal(size), Decimal(atr), Decimal(stop), Decimal(take), n
    )


RISK_PROFILES: Mapping[str, RiskProfile] = MappingProxyType(
    {
        "conservative": _profile("conservative", "5", "70", "2.0", "3", "10", 5),
        "moderate": _profile("moderate", "10", "90", "1.5", "5", "15", 10),
        "aggressive": _profile("aggressive", "15", "95", "1.0", "7", "20", 15),
    }
)


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    allocation: Allocation
    cash_buffer_pct: Decimal
    risk_level: RiskLevel
    expected_annual_return_pct: Decimal | None  # None: no promise for custom/strategy plans
    risk_profile: RiskProfile


TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {
        # each template names its own profile explicitly: the prototype looked profiles up
        # under the wrong key and silently got "moderate" for everyone
        "conservative": Template(
            "conservative",
            allocation(30, 50, 20),
            Decimal(7),
            RiskLevel.LOW,
            Decimal(12),
            RISK_PROFILES["conservative"],
        ),
        "moderate": Template(
            "moderate",
            allocation(40, 30, 30),
            Decimal(5),
            RiskLevel.MEDIUM,
            Decimal(18),
            RISK_PROFILES["moderate"],
        ),
        "aggressive": Template(
            "aggressive",
            allocation(50, 20, 30),
            Decimal(3),
            RiskLevel.HIGH,
            Decimal(25),
            RISK_PROFILES["aggressive"],
        ),
    }
)
CUSTOM = "custom"
TEMPLATE_NAMES: tuple[str, ...] = (*TEMPLATES, CUSTOM)


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    allocation: Allocation
    cash_buffer_pct: Decimal


STRATEGIES: Mapping[str, Strategy] = MappingProxyType(
    {
        "standard": Strategy("standard", allocation(40, 30, 30), Decimal(5)),
        "growth_focused": Strategy("growth_focused", allocation(50, 25, 25), Decimal(5)),
        "income_focused": Strategy("income_focused", allocation(25, 50, 25), Decimal(5)),
        "compound_focused": Strategy("compound_focused", allocation(30, 20, 50), Decimal(5)),
    }
)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The templates and strategies a system can be initialized with (run-time settings)."""

    templates: Mapping[str, Template] = field(default_factory=lambda: TEMPLATES)
    strategies: Mapping[str, Strategy] = field(default_factory=lambda: STRATEGIES)


BUILT_IN = Catalog()
