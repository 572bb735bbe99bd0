"""Exact money: Decimal dollars with cents, never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from .errors import InvalidAmount

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_cents(value: Decimal) -> Decimal:
    """Round to cents, banker's rounding (no systematic drift across many roundings)."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def check_amount(amount: object, *, field: str = "amount") -> Decimal:
    """Return `amount` if it is a positive, finite Decimal with at most two decimals."""
    if not isinstance(amount, Decimal):
        # floats are refused outright: 0.1 is not a dollar amount anyone can pay
        raise InvalidAmount(f"{field} must be a Decimal, got {type(amount).__name__}")
    if not amount.is_finite():
        raise InvalidAmount(f"{field} must be a finite number")
    if amount <= 0:
        raise InvalidAmount(f"{field} must be positive, got {amount}")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise InvalidAmount(f"{field} must have at most 2 decimal places, got {amount}")
    try:
        return amount.quantize(CENT)  # "100" -> "100.00": one representation per value
    except InvalidOperation:
        raise InvalidAmount(f"{field} is too large: {amount}") from None
