"""The catalog of templates and allocation strategies (docs/rules.md section 3) in the growth
settings: each entry parsed and checked from its JSON, every problem reported at once, and written
back.

Catalog changes add or replace whole entries by name; a custom entry is removed by giving
it as null, a built-in one can be replaced but never removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from .config import DEFAULT_LIMITS, check_allocation, check_range
from .errors import Problem
from .templates import (
    BUILT_IN,
    CUSTOM,
    RISK_PROFILES,
    Allocation,
    RiskLevel,
    Strategy,
    Template,
)

MAX_CATALOG_ENTRIES = 50  # each; the whole catalog travels in one config.updated event
_NAME = re.compile(r"[a-z0-9_]{1,40}")
_DEFAULT_LEVEL = {
    "conservative": RiskLevel.LOW,
    "moderate": RiskLevel.MEDIUM,
    "aggressive": RiskLevel.HIGH,
}
_RETURN_RANGE = (Decimal(0), Decimal(100))


def _allocation_to_dict(a: Allocation) -> dict[str, str]:
    return {
        "generation": str(a.generation),
        "revenue": str(a.revenue),
        "compounding": str(a.compounding),
    }


def template_to_dict(t: Template) -> dict[str, Any]:
    ret = t.expected_annual_return_pct
    return {
        "allocation": _allocation_to_dict(t.allocation),
        "cash_buffer_pct": str(t.cash_buffer_pct),
        "risk_level": t.risk_level.value,
        "expected_return_pct": None if ret is None else str(ret),
        "risk_profile": t.risk_profile.name,
    }


def strategy_to_dict(s: Strategy) -> dict[str, Any]:
    return {
        "allocation": _allocation_to_dict(s.allocation),
        "cash_buffer_pct": str(s.cash_buffer_pct),
    }


def decimal_value(value: object, path: str, problems: list[Problem]) -> Decimal | None:
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


def apply_catalog(
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
    values = [
        decimal_value(entry[k], f"{path}.{k}", problems) if k in entry else None for k in shares
    ]
    if any(v is None for v in values):
        return None
    alloc = Allocation(*(v for v in values if v is not None))
    problems += check_allocation(alloc, limits=DEFAULT_LIMITS, prefix=path)
    return alloc


def _buffer(raw: object, path: str, problems: list[Problem]) -> Decimal | None:
    buffer = decimal_value(raw, path, problems)
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
        expected = decimal_value(expected, f"{path}.expected_return_pct", problems)
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
