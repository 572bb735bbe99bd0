"""Raw (JSON-decoded) settings to and from an AccountConfig, validated as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .config import DEFAULT_LIMITS, ValidationLimits, check_config
from .enums import Reinvestment, Weekday
from .errors import Problem, ValidationFailed
from .model import AccountConfig

_FIELDS = {f.name for f in fields(AccountConfig)}


def apply_overrides(
    base: AccountConfig,
    overrides: Mapping[str, object],
    *,
    limits: ValidationLimits = DEFAULT_LIMITS,
) -> AccountConfig:
    """`base` with raw (JSON-decoded) settings applied, parsed and validated as a whole."""
    problems: list[Problem] = []
    parsed: dict[str, Any] = {}  # values typed per field by the branches below
    for name, raw in overrides.items():
        if name not in _FIELDS:
            problems.append(Problem(name, "unknown setting"))
        elif name == "entry_days":
            days = raw if isinstance(raw, list | tuple) else [raw]
            try:
                parsed[name] = tuple(Weekday(str(d).lower()) for d in days)
            except ValueError:
                problems.append(Problem(name, f"unknown day in {raw!r}"))
        elif name == "reinvestment":
            try:
                parsed[name] = Reinvestment(str(raw))
            except ValueError:
                problems.append(Problem(name, f"must be one of {[r.value for r in Reinvestment]}"))
        elif isinstance(raw, bool | float) or not isinstance(raw, str | int | Decimal):
            problems.append(Problem(name, "must be a decimal number written as a string"))
        else:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                problems.append(Problem(name, f"not a number: {raw!r}"))
                continue
            if value.is_finite():
                parsed[name] = value
            else:
                problems.append(Problem(name, "must be finite"))
    candidate = replace(base, **parsed)
    problems += check_config(candidate, limits=limits)
    if problems:
        raise ValidationFailed(problems)
    return candidate


def config_to_dict(config: AccountConfig) -> dict[str, object]:
    """JSON-ready form (money and percentages as strings), the inverse of `apply_overrides`."""
    return {
        f.name: (
            [d.value for d in config.entry_days]
            if f.name == "entry_days"
            else str(getattr(config, f.name))
        )
        for f in fields(AccountConfig)
    }
