"""Configuration validation (docs/rules.md section 3): every failure reported at once, by field
name."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .enums import TRADING_DAYS
from .errors import Problem, ValidationFailed
from .model import AccountConfig
from .templates import Allocation

Range = tuple[Decimal, Decimal]


_PERCENT: Range = (Decimal(0), Decimal(100))
_BUFFER: Range = (Decimal(0), Decimal(20))
_DELTA_MIN: Range = (Decimal(10), Decimal(60))
_DELTA_MAX: Range = (Decimal(20), Decimal(70))
_WEEKLY_TARGET: Range = (Decimal("0.1"), Decimal("5.0"))


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Inclusive bounds of section 3; an operator may tighten or widen them."""

    allocation: Range = _PERCENT
    allocation_total: Decimal = Decimal(100)
    allocation_tolerance: Decimal = Decimal("0.01")
    cash_buffer: Range = _BUFFER
    position_sizing: Range = _PERCENT
    delta_min: Range = _DELTA_MIN
    delta_max: Range = _DELTA_MAX
    target_weekly_return: Range = _WEEKLY_TARGET
    max_drawdown: Range = _PERCENT
    contracts_plus_leaps: Decimal = Decimal(100)


DEFAULT_LIMITS = ValidationLimits()


def check_range(value: Decimal, bounds: Range, name: str, out: list[Problem]) -> None:
    if not bounds[0] <= value <= bounds[1]:
        out.append(Problem(name, f"must be between {bounds[0]} and {bounds[1]}, got {value}"))


def check_allocation(
    alloc: Allocation, *, limits: ValidationLimits = DEFAULT_LIMITS, prefix: str = "allocation"
) -> list[Problem]:
    """Each share within bounds; the three shares sum to 100 within the tolerance."""
    out: list[Problem] = []
    for name in ("generation", "revenue", "compounding"):
        check_range(getattr(alloc, name), limits.allocation, f"{prefix}.{name}", out)
    if abs(alloc.total - limits.allocation_total) > limits.allocation_tolerance:
        out.append(
            Problem(prefix, f"shares must sum to {limits.allocation_total}, got {alloc.total}")
        )
    return out


def check_config(
    config: AccountConfig, *, limits: ValidationLimits = DEFAULT_LIMITS
) -> list[Problem]:
    """All problems of one account configuration, in field order; empty when valid."""
    out: list[Problem] = []
    check_range(config.allocation_pct, limits.allocation, "allocation_pct", out)
    check_range(config.cash_buffer_pct, limits.cash_buffer, "cash_buffer_pct", out)
    check_range(config.position_sizing_pct, limits.position_sizing, "position_sizing_pct", out)
    check_range(config.delta_min, limits.delta_min, "delta_min", out)
    check_range(config.delta_max, limits.delta_max, "delta_max", out)
    if config.delta_min >= config.delta_max:
        out.append(Problem("delta_min", f"must be below delta_max ({config.delta_max})"))
    check_range(
        config.target_weekly_return_pct,
        limits.target_weekly_return,
        "target_weekly_return_pct",
        out,
    )
    check_range(config.max_drawdown_pct, limits.max_drawdown, "max_drawdown_pct", out)
    if not config.entry_days:
        out.append(Problem("entry_days", "at least one entry day is required"))
    for day in config.entry_days:
        if day not in TRADING_DAYS:
            out.append(Problem("entry_days", f"{day} is not a trading day (Monday-Friday)"))
    if config.contracts_pct + config.leaps_pct != limits.contracts_plus_leaps:
        out.append(
            Problem("leaps_pct", f"contracts_pct + leaps_pct must be {limits.contracts_plus_leaps}")
        )
    if config.fork_threshold <= 0:
        out.append(Problem("fork_threshold", "must be greater than 0"))
    if config.merge_threshold <= config.fork_threshold:
        out.append(
            Problem("merge_threshold", f"must exceed fork_threshold ({config.fork_threshold})")
        )
    return out


def validate_config(
    config: AccountConfig, *, limits: ValidationLimits = DEFAULT_LIMITS
) -> AccountConfig:
    """Return `config` unchanged, or raise ValidationFailed listing every problem."""
    problems = check_config(config, limits=limits)
    if problems:
        raise ValidationFailed(problems)
    return config
