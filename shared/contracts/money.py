"""Money on the wire: a JSON string holding a decimal with at most two places, never a float."""

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationError

CENT = Decimal("0.01")
LIMIT = Decimal("1e12")
# The only spelling accepted on the wire: ASCII digits, an optional minus, an optional point.
# Decimal() alone would also take other scripts' digits, "1_000", "+5", " 7 " and "1E+2".
CANONICAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)


class InvalidAmount(ValueError):
    """An amount that is not a canonical decimal string: rejected as `invalid_amount`."""


def parse_money(value: Any, *, places: int = 2) -> Decimal:
    if not isinstance(value, str):
        raise InvalidAmount('must be a decimal string such as "1250.00", not a JSON number')
    if not CANONICAL.fullmatch(value):
        raise InvalidAmount(
            f"'{value[:40]}' is not a decimal string of ASCII digits such as \"1250.00\""
        )
    amount = Decimal(value)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise InvalidAmount(f"has more than {places} decimal places")
    if abs(amount) >= LIMIT:
        raise InvalidAmount("is out of range")
    return amount


def _positive(value: Any) -> Decimal:
    """An amount that moves money (rule 2): positive, in cents ("100" is 100.00). The one place
    it is checked: the domain takes it as given."""
    amount = parse_money(value)
    if amount <= 0:
        raise ValueError("must be greater than zero")
    return amount.quantize(CENT)


def amount_invalid(exc: ValidationError) -> bool:
    """Whether a payload failed on an amount's spelling (code `invalid_amount`)."""
    return any(isinstance((e.get("ctx") or {}).get("error"), InvalidAmount) for e in exc.errors())


_as_string = PlainSerializer(lambda d: str(d), return_type=str)
Money = Annotated[Decimal, BeforeValidator(parse_money), _as_string]
PositiveMoney = Annotated[Decimal, BeforeValidator(_positive), _as_string]
