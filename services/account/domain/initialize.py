"""Planning a new system (docs/rules.md section 3): one portfolio, three funded accounts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .config import DEFAULT_LIMITS, ValidationLimits, check_allocation, check_range
from .enums import AccountType
from .errors import AccountError, Problem, ValidationFailed
from .model import AccountConfig, cash_buffer_for
from .money import check_amount, to_cents
from .templates import (
    BUILT_IN,
    CUSTOM,
    RISK_PROFILES,
    Allocation,
    Catalog,
    RiskLevel,
    RiskProfile,
    Template,
)

DEFAULT_TEMPLATE = "moderate"
DEFAULT_CUSTOM_BUFFER_PCT = Decimal(5)
DEFAULT_RISK_PROFILE = "moderate"
_LEVEL = {"conservative": RiskLevel.LOW, "moderate": RiskLevel.MEDIUM, "aggressive": RiskLevel.HIGH}


@dataclass(frozen=True, slots=True)
class PlannedAccount:
    type: AccountType
    initial_balance: Decimal
    cash_buffer: Decimal
    available: Decimal
    config: AccountConfig


@dataclass(frozen=True, slots=True)
class SystemPlan:
    total_capital: Decimal
    template: str | None
    strategy: str | None
    allocation: Allocation
    cash_buffer_pct: Decimal
    risk_level: RiskLevel
    risk_profile: RiskProfile
    expected_annual_return_pct: Decimal | None
    accounts: tuple[PlannedAccount, ...]  # generation, revenue, compounding

    def account(self, account_type: AccountType) -> PlannedAccount:
        return next(a for a in self.accounts if a.type is account_type)

    @property
    def total_buffer(self) -> Decimal:
        return sum((a.cash_buffer for a in self.accounts), start=Decimal("0.00"))

    @property
    def total_available(self) -> Decimal:
        return sum((a.available for a in self.accounts), start=Decimal("0.00"))


def split_capital(total: Decimal, alloc: Allocation) -> tuple[Decimal, Decimal, Decimal]:
    """Gen and Rev rounded half-even to cents; Com-Acc takes what is left.

    The remainder cent goes to the Com-Acc because it never pays out: a stray cent there
    stays invested and compounds, and the three balances always sum exactly to `total`.
    """
    gen = to_cents(total * alloc.generation / 100)
    rev = to_cents(total * alloc.revenue / 100)
    return gen, rev, total - gen - rev


def plan_initialization(
    total_capital: Decimal,
    template: str | None = None,
    strategy: str | None = None,
    custom_allocation: Allocation | None = None,
    *,
    cash_buffer_pct: Decimal | None = None,
    risk_profile: str | None = None,
    limits: ValidationLimits = DEFAULT_LIMITS,
    catalog: Catalog = BUILT_IN,
) -> SystemPlan:
    """Resolve template/strategy/custom into a plan, or raise ValidationFailed with all problems.

    Nothing given means the moderate template; a custom allocation alone means "custom".
    `cash_buffer_pct` overrides the chosen buffer; `risk_profile` names the profile of a
    strategy or custom plan (default moderate), a template always carries its own.
    `catalog` holds the templates and strategies to choose from (the run-time settings).
    """
    problems: list[Problem] = []
    try:
        total_capital = check_amount(total_capital, field="total_capital")
    except AccountError as exc:
        problems.append(Problem("total_capital", exc.message))
    if template is None and strategy is None:
        template = CUSTOM if custom_allocation is not None else DEFAULT_TEMPLATE
    if template is not None and strategy is not None:
        problems.append(Problem("strategy", "give a template or a strategy, not both"))
    if custom_allocation is not None and template != CUSTOM:
        problems.append(Problem("allocation", "a custom allocation needs template 'custom'"))
    if risk_profile is not None and (
        template in catalog.templates or risk_profile not in RISK_PROFILES
    ):
        problems.append(
            Problem("risk_profile", f"one of {list(RISK_PROFILES)}, not with a template")
        )
    chosen = _resolve(catalog, template, strategy, custom_allocation, risk_profile, problems)
    buffer = chosen.cash_buffer_pct if cash_buffer_pct is None else cash_buffer_pct
    check_range(buffer, limits.cash_buffer, "cash_buffer_pct", problems)
    problems += check_allocation(chosen.allocation, limits=limits)
    if problems:
        raise ValidationFailed(problems)

    alloc = chosen.allocation
    balances = split_capital(total_capital, alloc)
    return SystemPlan(
        total_capital=total_capital,
        template=template,
        strategy=strategy,
        allocation=alloc,
        cash_buffer_pct=buffer,
        risk_level=chosen.risk_level,
        risk_profile=chosen.risk_profile,
        expected_annual_return_pct=chosen.expected_annual_return_pct,
        accounts=tuple(
            _plan_account(account_type, balance, alloc.share(account_type), buffer)
            for account_type, balance in zip(AccountType, balances, strict=True)
        ),
    )


def _resolve(
    catalog: Catalog,
    template: str | None,
    strategy: str | None,
    custom: Allocation | None,
    risk_profile: str | None,
    problems: list[Problem],
) -> Template:
    """The template, or a template-shaped description of a strategy or custom plan."""
    if template is not None and template in catalog.templates:
        return catalog.templates[template]
    profile = RISK_PROFILES.get(risk_profile or "", RISK_PROFILES[DEFAULT_RISK_PROFILE])
    level = _LEVEL[profile.name]
    fallback = BUILT_IN.strategies[
        "standard"
    ].allocation  # only used when problems are already reported
    if template == CUSTOM:
        if custom is None:
            problems.append(Problem("allocation", "required with template 'custom'"))
        return Template(CUSTOM, custom or fallback, DEFAULT_CUSTOM_BUFFER_PCT, level, None, profile)
    if template is not None:
        problems.append(
            Problem("template", f"unknown template, one of {[*catalog.templates, CUSTOM]}")
        )
    elif strategy is not None and strategy in catalog.strategies:
        s = catalog.strategies[strategy]
        return Template(s.name, s.allocation, s.cash_buffer_pct, level, None, profile)
    else:
        problems.append(Problem("strategy", f"unknown strategy, one of {list(catalog.strategies)}"))
    return Template("invalid", fallback, DEFAULT_CUSTOM_BUFFER_PCT, level, None, profile)


def _plan_account(
    account_type: AccountType, balance: Decimal, share: Decimal, buffer_pct: Decimal
) -> PlannedAccount:
    config = AccountConfig.for_type(account_type, allocation_pct=share, cash_buffer_pct=buffer_pct)
    buffer = cash_buffer_for(balance, buffer_pct)
    return PlannedAccount(account_type, balance, buffer, balance - buffer, config)
