"""The run-time growth settings (docs/rules.md sections 4-6), validated as a whole, applied all or
nothing.

Per-account values (fork and merge thresholds, the contracts / LEAPS split) live in each
account's AccountConfig; these are the system-wide policies around them, and the catalog of
templates and allocation strategies (section 3) a system is initialized from.

Catalog changes add or replace whole entries by name; a custom entry is removed by giving
it as null, a built-in one can be replaced but never removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

from .catalog import apply_catalog, decimal_value, strategy_to_dict, template_to_dict
from .errors import Problem, ValidationFailed
from .templates import STRATEGIES, TEMPLATES, Catalog, Strategy, Template


@dataclass(frozen=True, slots=True)
class GrowthSettings:
    auto_fork: bool = True
    fork_split_pct: Decimal = Decimal(50)  # of the surplus to the child Gen-Acc; rest to Com-Acc
    cooling_period_hours: int = 24
    daily_fork_limit: int = 5  # per portfolio tree
    reinvestment_months: tuple[int, ...] = (3, 6, 9, 12)
    # Section 11: the broker's positions value may differ from our marks by this share of the
    # account's value before it is announced; quotes for marks are kept this many days.
    valuation_tolerance_pct: Decimal = Decimal("0.5")
    quote_retention_days: int = 400
    # A quote revalues at most this many of the accounts holding its instrument (those valued
    # longest ago first); the others at their next event. 0: quotes only record marks.
    quote_revalue_limit: int = 100
    templates: Mapping[str, Template] = field(default_factory=lambda: TEMPLATES)
    strategies: Mapping[str, Strategy] = field(default_factory=lambda: STRATEGIES)

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.templates, self.strategies)


DEFAULT_SETTINGS = GrowthSettings()
_NAMES = {f.name for f in fields(GrowthSettings)}
CATALOGS = ("templates", "strategies")


def check_settings(s: GrowthSettings) -> list[Problem]:
    out: list[Problem] = []
    if not 0 < s.fork_split_pct < 100:
        out.append(
            Problem("fork_split_pct", f"must be above 0 and below 100, got {s.fork_split_pct}")
        )
    if not 0 <= s.cooling_period_hours <= 24 * 365:
        out.append(Problem("cooling_period_hours", "must be between 0 and 8760"))
    if not 1 <= s.daily_fork_limit <= 1000:
        out.append(Problem("daily_fork_limit", "must be between 1 and 1000"))
    if not 0 <= s.valuation_tolerance_pct <= 100:
        out.append(Problem("valuation_tolerance_pct", "must be between 0 and 100"))
    if not 1 <= s.quote_retention_days <= 36500:
        out.append(Problem("quote_retention_days", "must be between 1 and 36500"))
    if not 0 <= s.quote_revalue_limit <= 10000:
        out.append(Problem("quote_revalue_limit", "must be between 0 and 10000"))
    months = s.reinvestment_months
    if not months or any(not 1 <= m <= 12 for m in months):
        out.append(Problem("reinvestment_months", "one or more months, each 1-12"))
    elif len({(m - 1) // 3 for m in months}) != len(months):
        out.append(Problem("reinvestment_months", "at most one month per calendar quarter"))
    return out


def apply_settings(base: GrowthSettings, raw: Mapping[str, object]) -> GrowthSettings:
    """`base` with raw JSON values applied; every problem reported at once, by field name."""
    problems: list[Problem] = []
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _NAMES:
            problems.append(Problem(name, "unknown setting"))
        elif name in CATALOGS:
            catalog = apply_catalog(name, getattr(base, name), value, problems)
            if catalog is not None:
                parsed[name] = catalog
        elif name == "auto_fork":
            if isinstance(value, bool):
                parsed[name] = value
            else:
                problems.append(Problem(name, "must be true or false"))
        elif name == "reinvestment_months":
            if isinstance(value, list) and all(type(m) is int for m in value):
                parsed[name] = tuple(sorted(value))
            else:
                problems.append(Problem(name, "must be a list of month numbers"))
        elif name in ("fork_split_pct", "valuation_tolerance_pct"):
            number = decimal_value(value, name, problems)
            if number is not None:
                parsed[name] = number
        elif type(value) is int:
            parsed[name] = value
        else:
            problems.append(Problem(name, "must be a whole number"))
    candidate = replace(base, **parsed)
    problems += check_settings(candidate)
    if problems:
        raise ValidationFailed(problems)
    return candidate


def settings_to_dict(s: GrowthSettings) -> dict[str, Any]:
    """JSON-ready (decimals as strings), the inverse of `apply_settings`."""
    return {
        "auto_fork": s.auto_fork,
        "fork_split_pct": str(s.fork_split_pct),
        "cooling_period_hours": s.cooling_period_hours,
        "daily_fork_limit": s.daily_fork_limit,
        "reinvestment_months": list(s.reinvestment_months),
        "valuation_tolerance_pct": str(s.valuation_tolerance_pct),
        "quote_retention_days": s.quote_retention_days,
        "quote_revalue_limit": s.quote_revalue_limit,
        "templates": {name: template_to_dict(t) for name, t in s.templates.items()},
        "strategies": {name: strategy_to_dict(st) for name, st in s.strategies.items()},
    }
