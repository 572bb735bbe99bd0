"""The run-time growth settings (sections 4-6), validated as a whole, applied all or nothing.

Per-account values (fork and merge thresholds, the contracts / LEAPS split) live in each
account's AccountConfig; these are the system-wide policies around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import INVALID_CONFIGURATION, Problem, ValidationFailed


@dataclass(frozen=True, slots=True)
class GrowthSettings:
    auto_fork: bool = True
    fork_split_pct: Decimal = Decimal(50)  # of the surplus to the child Gen-Acc; rest to Com-Acc
    cooling_period_hours: int = 24
    daily_fork_limit: int = 5  # per portfolio tree
    reinvestment_months: tuple[int, ...] = (3, 6, 9, 12)


DEFAULT_SETTINGS = GrowthSettings()
_NAMES = {f.name for f in fields(GrowthSettings)}


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
        elif name == "fork_split_pct":
            try:
                parsed[name] = (
                    Decimal(value)
                    if isinstance(value, str | int) and not isinstance(value, bool)
                    else None
                )
            except InvalidOperation:
                parsed[name] = None
            if parsed[name] is None or not parsed[name].is_finite():
                problems.append(Problem(name, "must be a decimal number written as a string"))
                parsed.pop(name)
        elif type(value) is int:
            parsed[name] = value
        else:
            problems.append(Problem(name, "must be a whole number"))
    candidate = replace(base, **parsed)
    problems += check_settings(candidate)
    if problems:
        raise ValidationFailed(problems, code=INVALID_CONFIGURATION)
    return candidate


def settings_to_dict(s: GrowthSettings) -> dict[str, Any]:
    """JSON-ready (decimals as strings), the inverse of `apply_settings`."""
    out = asdict(s)
    out["fork_split_pct"] = str(s.fork_split_pct)
    out["reinvestment_months"] = list(s.reinvestment_months)
    return out
