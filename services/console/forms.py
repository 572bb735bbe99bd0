"""Server-side checks of every form field, with the wire's own rules (docs/contract.md, money.py).

Pure: a form is a dict of strings in, clean values and a problem per field out. The browser's
own checks are a convenience; these are the ones that count.
"""

import re
import uuid
from decimal import Decimal

from shared.contracts.money import LIMIT
from shared.contracts.vocabulary import SETTABLE_STATUSES

# Money on the wire: ASCII digits, an optional sign, at most two decimals; no exponent, no
# spaces, no other scripts' digits (which Python's Decimal would accept).
MONEY = re.compile(r"^-?[0-9]+(\.[0-9]{1,2})?$", re.ASCII)
QUARTER = re.compile(r"^[0-9]{4}-Q[1-4]$", re.ASCII)
STATUSES = tuple(s.value for s in SETTABLE_STATUSES)


class Problems(dict[str, str]):
    """Field name -> what is wrong with it, in words for the person who filled it in."""

    def add(self, name: str, message: str) -> None:
        self.setdefault(name, message)


def text(
    problems: Problems,
    form: dict[str, str],
    name: str,
    *,
    required: bool = False,
    most: int = 500,
    strip: bool = True,
) -> str:
    value = form.get(name, "")
    value = value.strip() if strip else value
    if required and not value:
        problems.add(name, "is required")
    elif len(value) > most:
        problems.add(name, f"is longer than {most} characters")
    elif any(ord(ch) < 32 and ch not in "\t" for ch in value):
        problems.add(name, "has control characters")
    return value


def money(problems: Problems, form: dict[str, str], name: str) -> str:
    """A positive amount as the wire carries it ("1250.00"), or a problem."""
    value = form.get(name, "").strip()
    if not MONEY.match(value):
        problems.add(name, "must be an amount like 1250.00 (digits, at most two decimals)")
    elif not Decimal(0) < Decimal(value) < LIMIT:
        problems.add(name, "must be greater than zero and less than 1,000,000,000,000")
    return value


def ident(problems: Problems, form: dict[str, str], name: str, *, required: bool = True) -> str:
    """A UUID in its canonical form (account, portfolio and command ids)."""
    value = form.get(name, "").strip()
    if not value and not required:
        return ""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        problems.add(name, "must be an id like 3f2c9a1e-...")
        return value
    if not value.isascii():
        problems.add(name, "must be an id like 3f2c9a1e-...")
    return str(parsed)


def choice(problems: Problems, form: dict[str, str], name: str, options: tuple[str, ...]) -> str:
    value = form.get(name, "")
    if value not in options:
        problems.add(name, f"must be one of {', '.join(options)}")
    return value


def quarter(problems: Problems, form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if value and not QUARTER.match(value):
        problems.add(name, "must look like 2026-Q1, or be left empty")
    return value


def page_size(value: str | None, *, default: int = 25, most: int = 200) -> int:
    """A query-string page size, clamped; bad input falls back to the default."""
    if value and value.isascii() and value.isdigit():
        return max(1, min(int(value), most))
    return default


def new_command_id() -> str:
    return str(uuid.uuid4())
