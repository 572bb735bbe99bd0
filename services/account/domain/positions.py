"""docs/rules.md section 11: what an account holds (options short and long, shares with their cost
basis).

A position's `cost` is the signed money paid to open what is still open: a short put sold for
3.50 x 2 contracts has cost -700.00 (premium received), 300 shares bought at 183 have cost
54,900.00. Valued at cost, opening a position therefore leaves the account's value unchanged
but for the commission. Every change is a `Move` (signed quantity and cost), so a position is
always the sum of its history and a correction is the opposite move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from shared.contracts.vocabulary import Refusal

from .errors import AccountError
from .money import ZERO, to_cents

CLOSING = {"buy_to_close": 1, "sell_to_close": -1}  # side -> direction of the quantity change
OPENING = {"sell_to_open": -1, "buy_to_open": 1}
STOCK = {"buy": 1, "sell": -1}


class PositionNotOpen(AccountError):
    """Closing, expiring or assigning more than is open: never a silent negative position."""

    code = Refusal.POSITION_NOT_OPEN


@dataclass(frozen=True, slots=True)
class Contract:
    """What a position is in: shares of `symbol`, or one option series on it."""

    symbol: str
    option_type: str | None = None  # put | call; None for shares
    strike: Decimal | None = None
    expiration: date | None = None
    multiplier: int = 1

    @property
    def is_option(self) -> bool:
        return self.option_type is not None

    @property
    def key(self) -> str:
        """The symbol quotes use: the ticker for shares, the OCC option symbol for an option
        (root padded to 6, YYMMDD, P or C, strike x 1000 in 8 digits). A fill may leave out
        the expiration (docs/contract.md): such a series is dated 000000."""
        if not self.is_option:
            return self.symbol
        assert self.strike is not None
        return occ_symbol(self.symbol, self.option_type, self.strike, self.expiration)

    def describe(self) -> str:
        if not self.is_option:
            return f"{self.symbol} shares"
        return f"{self.symbol} {self.expiration} {self.strike} {self.option_type}"


@lru_cache(maxsize=4096)
def occ_symbol(
    symbol: str, option_type: str | None, strike: Decimal, expiration: date | None
) -> str:
    """Remembered: every fill and mark of a series asks for it, and formatting its date alone
    (strftime) cost more than the rest of a mark. Equal strikes give equal symbols."""
    whole = int((strike * 1000).to_integral_value(ROUND_HALF_EVEN))
    side = "P" if option_type == "put" else "C"
    day = "000000" if expiration is None else f"{expiration:%y%m%d}"
    return f"{symbol:<6}{day}{side}{whole:08d}"


def shares(symbol: str) -> Contract:
    return Contract(symbol=symbol)


@dataclass(frozen=True, slots=True)
class Holding:
    contract: Contract
    quantity: int = 0  # signed: contracts or shares; short is negative
    cost: Decimal = ZERO  # signed cost basis of the open quantity


@dataclass(frozen=True, slots=True)
class Move:
    """One change of one position; the holding after it comes with it."""

    contract: Contract
    quantity: int
    cost: Decimal
    after: Holding


def move(held: Holding, quantity: int, price: Decimal, *, closing: bool) -> Move:
    """Apply a signed quantity at `price` (per share, or per option before the multiplier).

    Adding to a position (or opening one) costs quantity x price x multiplier; reducing one
    takes out its share of the cost basis (average cost), and reducing more than is open, or
    a closing trade that would open, is refused."""
    c = held.contract
    reduces = held.quantity != 0 and (held.quantity > 0) != (quantity > 0)
    if closing and not reduces:
        raise PositionNotOpen(f"no {_side(-quantity)} position in {c.describe()} to close")
    if reduces and abs(quantity) > abs(held.quantity):
        raise PositionNotOpen(
            f"{c.describe()}: {abs(quantity)} to close, {abs(held.quantity)} open"
        )
    if reduces:
        left = held.quantity + quantity
        cost = (
            -held.cost if left == 0 else -to_cents(held.cost * abs(quantity) / abs(held.quantity))
        )
    else:
        cost = to_cents(Decimal(quantity) * price * c.multiplier)
    after = Holding(c, held.quantity + quantity, held.cost + cost)
    return Move(c, quantity, cost, after)


def fill_moves(held: Holding, *, side: str, quantity: int, price: Decimal) -> Move:
    """The position change of a fill (sides of docs/contract.md `ws4.trade.filled`)."""
    if side in CLOSING:
        return move(held, CLOSING[side] * quantity, price, closing=True)
    if side in OPENING:
        direction = OPENING[side]
        if held.quantity * direction < 0:
            raise PositionNotOpen(
                f"{held.contract.describe()} is {_side(held.quantity)}: close it with a closing trade"
            )
        return move(held, direction * quantity, price, closing=False)
    # Stock: a buy opens or covers; a sell must sell shares held (no short selling by fill).
    return move(held, STOCK[side] * quantity, price, closing=side == "sell")


def expire(held: Holding, contracts: int) -> Move:
    """An option that expired worthless: `contracts` of it leave at no cash, cost written off."""
    direction = 1 if held.quantity < 0 else -1
    return move(held, direction * contracts, ZERO, closing=True)


@dataclass(frozen=True, slots=True)
class Assignment:
    option: Move
    stock: Move
    short_stock: bool  # a call assigned without the shares to deliver: a protocol violation


def short_option(
    held: Iterable[Holding],
    *,
    symbol: str,
    option_type: str,
    strike: Decimal,
    expiration: date | None = None,
) -> Holding | None:
    """The short position an assignment names: its series when the broker gives the
    expiration; without it, the nearest expiration short, as the broker assigns the series
    that is due."""
    found = [
        h
        for h in held
        if h.quantity < 0
        and h.contract.symbol == symbol
        and h.contract.option_type == option_type
        and h.contract.strike == strike
        and (expiration is None or h.contract.expiration == expiration)
    ]
    return min(found, key=lambda h: h.contract.expiration or date.max, default=None)


def assign(option: Holding, stock: Holding, contracts: int) -> Assignment:
    """A short option assigned: a put buys contracts x multiplier shares at the strike (cost
    basis = strike), a call delivers them (from shares held, or short stock if there are none)."""
    c = option.contract
    if option.quantity > -contracts:
        raise PositionNotOpen(
            f"{c.describe()}: {contracts} assigned, {max(0, -option.quantity)} short open"
        )
    assert c.strike is not None
    closed = move(option, contracts, ZERO, closing=True)
    count = contracts * c.multiplier
    if c.option_type == "put":
        delivered = move(stock, count, c.strike, closing=False)
        return Assignment(closed, delivered, short_stock=False)
    held = max(0, stock.quantity)
    if held >= count:
        return Assignment(closed, move(stock, -count, c.strike, closing=True), short_stock=False)
    out = move(stock, -held, c.strike, closing=True) if held else None
    rest = move(out.after if out else stock, held - count, c.strike, closing=False)
    total = Move(stock.contract, -count, (out.cost if out else ZERO) + rest.cost, rest.after)
    return Assignment(closed, total, short_stock=True)


def collateral(held: Iterable[Holding]) -> Decimal:
    """The cash short puts secure: strike x multiplier x contracts short, summed (a fork
    leaves it in the account)."""
    return sum(
        (
            h.contract.strike * h.contract.multiplier * -h.quantity
            for h in held
            if h.contract.option_type == "put" and h.contract.strike is not None and h.quantity < 0
        ),
        start=ZERO,
    )


def _side(quantity: int) -> str:
    return "long" if quantity > 0 else "short"
