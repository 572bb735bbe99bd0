"""The run-time growth settings (sections 4-6), validated as a whole, applied all or nothing.

Per-account values (fork and merge thresholds, the contracts / LEAPS split) live in each
account's AccountConfig; these are the system-wide policies around them, and the catalog of
templates and allocation strategies (section 3) a system is initialized from.

Catalog changes add or replace whole entries by name; a custom entry is removed by giving
it as null, a built-in one can be replaced but never removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from .config import DEFAULT_LIMITS, check_allocation, check_range
from .errors import Problem, ValidationFailed
from .templates import (
    BUILT_IN,
    CUSTOM,
    RISK_PROFILES,
    STRATEGIES,
    TEMPLATES,
    Allocation,
    Catalog,
    RiskLevel,
    Strategy,
    Template,
)


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
    templates: Mapping[str, Template] = field(default_factory=lambda: TEMPLATES)
    strategies: Mapping[str, Strategy] = field(default_factory=lambda: STRATEGIES)

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.templates, self.strategies)


DEFAULT_SETTINGS = GrowthSettings()
_NAMES = {f.name for f in fields(GrowthSettings)}
CATALOGS = ("templates", "strategies")
MAX_CATALOG_ENTRIES = 50  # each; the whole catalog travels in one config.updated event
_NAME = re.compile(r"[a-z0-9_]{1,40}")
_DEFAULT_LEVEL = {
    "conservative": RiskLevel.LOW,
    "moderate": RiskLevel.MEDIUM,
    "aggressive": RiskLevel.HIGH,
}
_RETURN_RANGE = (Decimal(0), Decimal(100))


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
            catalog = _apply_catalog(name, getattr(base, name), value, problems)
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
            number = _decimal(value, name, problems)
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
        "templates": {name: template_to_dict(t) for name, t in s.templates.items()},
        "strategies": {name: strategy_to_dict(st) for name, st in s.strategies.items()},
    }


def _allocation_to_dict(a: Allocation) -> dict[str, str]:
    return {"generation": str(a.generation), "revenue": str(a.revenue), "compounding": str(a.compounding)}  # fmt: skip


def template_to_dict(t: Template) -> dict[str, Any]:
    ret = t.expected_annual_return_pct
    return {
        "allocation": _allocation_to_dict(t.allocation), "cash_buffer_pct": str(t.cash_buffer_pct),
        "risk_level": t.risk_level.value, "expected_return_pct": None if ret is None else str(ret),
        "risk_profile": t.risk_profile.name,
    }  # fmt: skip


def strategy_to_dict(s: Strategy) -> dict[str, Any]:
    return {"allocation": _allocation_to_dict(s.allocation), "cash_buffer_pct": str(s.cash_buffer_pct)}  # fmt: skip


def _decimal(value: object, path: str, problems: list[Problem]) -> Decimal | None:
    """A finite decimal given as a string or whole number, or None with a problem reported."""
    number: Decimal | None = None
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        problems.append(Problem(path, "must be a decimal number written as a string"))
        return None
    return number


def _apply_catalog(
    kind: str, base: Mapping[str, Any], raw: object, problems: list[Problem]
) -> Mapping[str, Any] | None:
    """`base` with whole entries added, replaced or (custom ones, given as null) removed."""
    if not isinstance(raw, dict):
        problems.append(Problem(kind, "must be an object of entries by name"))
        return None
    built_in: Mapping[str, Any] = getattr(BUILT_IN, kind)
    out = dict(base)
    before = len(problems)
    for name, entry in raw.items():
        path = f"{kind}.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(Problem(path, "name must be 1-40 characters of a-z, 0-9 and _"))
        elif kind == "templates" and name == CUSTOM:
            problems.append(Problem(path, f"'{CUSTOM}' is reserved for caller-given allocations"))
        elif entry is None:
            if name in built_in:
                problems.append(Problem(path, "a built-in entry can be replaced, not removed"))
            out.pop(name, None)
        elif kind == "templates":
            template = _template(name, entry, path, problems)
            if template is not None:
                out[name] = template
        else:
            strategy = _strategy(name, entry, path, problems)
            if strategy is not None:
                out[name] = strategy
    if len(out) > MAX_CATALOG_ENTRIES:
        problems.append(Problem(kind, f"at most {MAX_CATALOG_ENTRIES} entries"))
    return None if len(problems) > before else MappingProxyType(out)


def _entry(
    entry: object, path: str, required: set[str], optional: set[str], problems: list[Problem]
) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        problems.append(Problem(path, "must be an object, or null to remove a custom entry"))
        return None
    for key in sorted(set(entry) - required - optional):
        problems.append(Problem(f"{path}.{key}", "unknown field"))
    for key in sorted(required - set(entry)):
        problems.append(Problem(f"{path}.{key}", "required"))
    return entry


def _allocation(raw: object, path: str, problems: list[Problem]) -> Allocation | None:
    shares = ("generation", "revenue", "compounding")
    entry = _entry(raw, path, set(shares), set(), problems)
    if entry is None:
        return None
    values = [_decimal(entry[k], f"{path}.{k}", problems) if k in entry else None for k in shares]
    if any(v is None for v in values):
        return None
    alloc = Allocation(*(v for v in values if v is not None))
    problems += check_allocation(alloc, limits=DEFAULT_LIMITS, prefix=path)
    return alloc


def _buffer(raw: object, path: str, problems: list[Problem]) -> Decimal | None:
    buffer = _decimal(raw, path, problems)
    if buffer is not None:
        check_range(buffer, DEFAULT_LIMITS.cash_buffer, path, problems)
    return buffer


def _shares(
    entry: dict[str, Any], path: str, problems: list[Problem]
) -> tuple[Allocation | None, Decimal | None]:
    """The entry's allocation and cash buffer, each parsed only when given ("required" else)."""
    alloc = buffer = None
    if "allocation" in entry:
        alloc = _allocation(entry["allocation"], f"{path}.allocation", problems)
    if "cash_buffer_pct" in entry:
        buffer = _buffer(entry["cash_buffer_pct"], f"{path}.cash_buffer_pct", problems)
    return alloc, buffer


def _template(name: str, raw: object, path: str, problems: list[Problem]) -> Template | None:
    required = {"allocation", "cash_buffer_pct", "risk_profile"}
    entry = _entry(raw, path, required, {"risk_level", "expected_return_pct"}, problems)
    if entry is None:
        return None
    before = len(problems)
    alloc, buffer = _shares(entry, path, problems)
    profile = entry.get("risk_profile")
    if "risk_profile" in entry and not (isinstance(profile, str) and profile in RISK_PROFILES):
        problems.append(Problem(f"{path}.risk_profile", f"one of {list(RISK_PROFILES)}"))
    level = entry.get("risk_level", _DEFAULT_LEVEL.get(str(profile), RiskLevel.MEDIUM))
    if not (isinstance(level, str) and level in {lv.value for lv in RiskLevel}):
        problems.append(Problem(f"{path}.risk_level", f"one of {[lv.value for lv in RiskLevel]}"))
    expected = entry.get("expected_return_pct")
    if expected is not None:
        expected = _decimal(expected, f"{path}.expected_return_pct", problems)
        if expected is not None:
            check_range(expected, _RETURN_RANGE, f"{path}.expected_return_pct", problems)
    if len(problems) > before or alloc is None or buffer is None:
        return None
    return Template(name, alloc, buffer, RiskLevel(level), expected, RISK_PROFILES[str(profile)])


def _strategy(name: str, raw: object, path: str, problems: list[Problem]) -> Strategy | None:
    entry = _entry(raw, path, {"allocation", "cash_buffer_pct"}, set(), problems)
    if entry is None:
        return None
    before = len(problems)
    alloc, buffer = _shares(entry, path, problems)
    if len(problems) > before or alloc is None or buffer is None:
        return None
    return Strategy(name, alloc, buffer)
