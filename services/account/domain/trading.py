"""docs/rules.md sections 8 and 9: the money of fills and assignments, protocol checks, drawdown
watch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from .errors import FillConflict
from .model import AccountConfig
from .money import ZERO, to_cents

EXCHANGE_TZ = ZoneInfo("America/New_York")  # entry days are trading days at the exchange
NO_ENTRY_WEEKS = frozenset({"W-IDL", "P-DD"})
CREDIT_SIDES = frozenset({"sell_to_open", "sell_to_close", "sell"})
OPENING_SIDES = frozenset({"sell_to_open", "buy_to_open"})


def first_application(claim: str, *, kind: str, ref: str) -> bool:
    """A broker movement applies once per reference: True the first time, False when the same
    figures come again (nothing to do); other figures under a used reference are refused."""
    if claim == "conflict":
        raise FillConflict(f"{kind} {ref} was already applied with other figures")
    return claim == "new"


def fill_amount(
    *, side: str, quantity: int, price: Decimal, multiplier: int, commission: Decimal
) -> Decimal:
    """Signed cash effect of a fill: selling credits, buying debits; commission always costs."""
    gross = Decimal(quantity) * price * multiplier
    return to_cents(gross - commission if side in CREDIT_SIDES else -gross - commission)


def assignment_amount(
    *, option_type: str, strike: Decimal, contracts: int, multiplier: int
) -> Decimal:
    """A put assignment buys the stock (debit); a call assignment sells it (credit)."""
    value = to_cents(strike * contracts * multiplier)
    return -value if option_type == "put" else value


def protocol_breaches(
    config: AccountConfig,
    *,
    side: str,
    filled_at: datetime,
    delta: Decimal | None,
    week_type: str | None,
) -> list[str]:
    """What an opening trade did against the account's protocol; closing trades are free."""
    if side not in OPENING_SIDES:
        return []
    found = []
    day = filled_at.astimezone(EXCHANGE_TZ).strftime("%A").lower()
    if day not in {d.value for d in config.entry_days}:
        allowed = ", ".join(d.value for d in config.entry_days)
        found.append(f"entry_day: opened on {day}; this account enters on {allowed}")
    if delta is not None:
        points = abs(delta) * 100
        if not config.delta_min <= points <= config.delta_max:
            found.append(
                f"delta: {points:.0f} outside {config.delta_min:.0f}-{config.delta_max:.0f}"
            )
    if week_type in NO_ENTRY_WEEKS:
        found.append(f"week_type: no new entries in a {week_type} week")
    return found


@dataclass(frozen=True, slots=True)
class Drawdown:
    total_value: Decimal
    peak_value: Decimal
    drawdown_pct: Decimal
    breached: bool  # at or beyond the account's max drawdown
    newly_breached: bool  # crossed on this valuation: announce once per crossing


def watch_drawdown(
    *,
    balance: Decimal,
    positions_value: Decimal,
    peak: Decimal,
    was_breached: bool,
    max_drawdown_pct: Decimal,
) -> Drawdown:
    total = balance + positions_value
    peak = max(peak, total)
    pct = ZERO if peak <= 0 else ((peak - total) / peak * 100).quantize(Decimal("0.01"))
    breached = pct >= max_drawdown_pct
    return Drawdown(total, peak, pct, breached, breached and not was_breached)
