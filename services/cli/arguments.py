"""The CLI's argument types: a friendly usage error before anything is sent."""

import argparse
import uuid
from datetime import datetime

from shared.contracts.money import parse_money
from shared.contracts.vocabulary import AccountType

TYPES = {t.value[:3]: t.value for t in AccountType}  # gen, rev, com


def amount(text: str) -> str:
    try:
        value = parse_money(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"amount '{text}' {exc}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"amount '{text}' must be greater than zero")
    return str(value)


def percent(text: str) -> str:
    try:
        return str(parse_money(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"percentage '{text}' {exc}") from None


def account_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an account id (a UUID)") from None


def account_type(text: str) -> str:
    name = TYPES.get(text.lower(), text.lower())
    if name not in TYPES.values():
        raise argparse.ArgumentTypeError(
            f"'{text}' is not one of gen, rev, com ({', '.join(TYPES.values())})"
        )
    return name


def allocation(text: str) -> dict[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(
            "allocation is three percentages: gen,rev,com (e.g. 40,30,30)"
        )
    return dict(zip(TYPES.values(), map(percent, parts), strict=True))


def setting(text: str) -> tuple[str, str | list[str]]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    # Lists (entry_days=monday,wednesday) split on commas; numbers travel as strings, like money.
    return key.strip(), [v.strip() for v in value.split(",")] if "," in value else value.strip()


def moment(text: str) -> str:
    """An RFC 3339 time with its zone, e.g. 2026-06-30T21:00:00Z."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a time with its zone, e.g. 2026-06-30T21:00:00Z"
        )
    return at.isoformat()


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number of seconds")
    return value
