"""Money on the wire: a JSON string holding a decimal with at most two places, never a float."""

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

CENT = Decimal("0.01")
LIMIT = Decimal("1e12")


def parse_money(value: Any, *, places: int = 2) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "1250.00", not a JSON number')
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"'{value[:40]}' is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise ValueError(f"has more than {places} decimal places")
    if abs(amount) >= LIMIT:
        raise ValueError("is out of range")
    return amount


def _positive(value: Any) -> Decimal:
    amount = parse_money(value)
    if amount <= 0:
        raise ValueError("must be greater than zero")
    return amount


_as_string = PlainSerializer(lambda d: str(d), return_type=str)
Money = Annotated[Decimal, BeforeValidator(parse_money), _as_string]
PositiveMoney = Annotated[Decimal, BeforeValidator(_positive), _as_string]
