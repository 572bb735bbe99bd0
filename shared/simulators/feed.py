"""A deterministic WS2 + WS4 feed that trades the ALL-USE cycle (pure: no I/O).

Week types, drawn per week (documented frequencies, summing to 100 %): P-EW 30, C-PNO 15,
C-WAP 10, P-AWL 8, P-RO 8, C-RO 8, C-REC 5, W-IDL 5, P-AOL 4, C-WAP+ 4, P-DD 3; the market
moves with them (MOVES: the week's close against the last, plus a little noise per symbol).
Each account sells puts (docs/rules.md section 1: Gen-Acc on Thursday at |delta| 0.40-0.50, Rev-Acc
and Com-Acc on Monday-Wednesday at 0.30-0.40 and 0.20-0.30), as many contracts as its position
sizing share of its cash allows (a Gen-Acc's cash above its baseline is surplus that a fork
may take away the same day, so it never secures a put); a put that closes in the money on Friday is assigned and the
shares are held, and covered calls are sold on them (at or above their cost) until a call is
assigned; everything out of the money expires (`ws4.option.expired`). P-RO / C-RO weeks roll:
the option is bought back on Friday. Quotes of every symbol open and close the week, options
are quoted at the close, and each account's valuation follows before expirations and
assignments are announced. About `violation_rate` of entries break one rule (wrong day or
delta); W-IDL / P-DD weeks have no entries but such violations."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from random import Random
from typing import Any

WEEK_FREQUENCIES = {
    "P-EW": 30,
    "C-PNO": 15,
    "C-WAP": 10,
    "P-AWL": 8,
    "P-RO": 8,
    "C-RO": 8,
    "C-REC": 5,
    "W-IDL": 5,
    "P-AOL": 4,
    "C-WAP+": 4,
    "P-DD": 3,
}
MOVES = {  # week type -> the market's move over the week, % (low, high)
    "P-EW": (0.5, 2.0),
    "P-AWL": (-4.0, -1.5),
    "P-RO": (-1.5, -0.5),
    "P-AOL": (-7.0, -4.0),
    "P-DD": (-9.0, -6.0),
    "C-WAP": (1.5, 3.0),
    "C-WAP+": (3.0, 6.0),
    "C-PNO": (-0.5, 1.0),
    "C-RO": (0.5, 1.5),
    "C-REC": (0.0, 1.0),
    "W-IDL": (-0.5, 0.5),
}
PROFILES = {  # account type -> (entry weekdays, Monday = 0; |delta| range; underlyings)
    "generation": ((3,), (40, 50), ("TSLA", "NVDA", "AMD", "AAPL", "AMZN")),
    "revenue": ((0, 1, 2), (30, 40), ("AAPL", "AMZN", "MSFT", "GOOGL", "META")),
    "compounding": ((0, 1, 2), (20, 30), ("AAPL", "AMZN", "MSFT", "GOOGL", "META")),
}
SIZING = {"generation": Decimal(90), "revenue": Decimal(90), "compounding": Decimal(85)}
SPOT = {
    "TSLA": 250,
    "NVDA": 480,
    "AMD": 150,
    "AAPL": 190,
    "AMZN": 150,
    "MSFT": 410,
    "GOOGL": 140,
    "META": 350,
}
WS2, WS4 = "ws2/simulator", "ws4/simulator"
CENT, TICK = Decimal("0.01"), Decimal("0.05")


@dataclass(frozen=True)
class Event:
    stream: str  # the unprefixed stream name
    source: str
    type: str
    at: datetime
    data: dict[str, Any]
    id: str
    subject: str | None = None


@dataclass
class Option:
    symbol: str
    kind: str  # put | call
    strike: Decimal
    expiration: date
    contracts: int


@dataclass
class Book:
    """What the simulator believes an account holds (its cash synced from the platform)."""

    kind: str
    cash: Decimal
    baseline: Decimal  # a Gen-Acc's cash above it is surplus a fork takes away: never collateral
    shares: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # symbol: (qty, cost)
    option: Option | None = None


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def occ(o: Option) -> str:
    side = "P" if o.kind == "put" else "C"
    return f"{o.symbol:<6}{o.expiration:%y%m%d}{side}{int(o.strike * 1000):08d}"


class Feed:
    def __init__(
        self,
        accounts: list[tuple[str, str]],
        *,
        seed: int,
        violation_rate: float = 0.05,
        cash: dict[str, Decimal] | None = None,
        week_types: list[str] | None = None,
    ) -> None:
        self.rng, self.violation_rate = Random(seed), violation_rate  # noqa: S311
        start = cash or {}
        self.books: dict[str, Book] = {}
        for account, kind in accounts:
            self.add(account, kind, start.get(account, Decimal("100000.00")))
        self.spot = {s: Decimal(p) for s, p in SPOT.items()}
        self.week_types, self.weeks = week_types or [], 0

    def add(self, account: str, kind: str, cash: Decimal) -> None:
        self.books.setdefault(account, Book(kind, cash, cash))

    def sync(
        self, balances: dict[str, Decimal], baselines: dict[str, Decimal] | None = None
    ) -> None:
        """The platform's cash (after forks, merges and its own rounding) for the next week,
        and the baselines forks left behind."""
        for account, balance in balances.items():
            if account in self.books:
                self.books[account].cash = balance
        for account, baseline in (baselines or {}).items():
            if account in self.books:
                self.books[account].baseline = baseline

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), UTC)

    def _event(
        self,
        stream: str,
        type_: str,
        at: datetime,
        data: dict[str, Any],
        subject: str | None = None,
    ) -> Event:
        source = WS2 if stream.startswith("ws2") else WS4
        return Event(stream, source, type_, at, data, self._id(), subject)

    def week(self, monday: date) -> list[Event]:
        rng = self.rng
        code = (
            self.week_types[self.weeks % len(self.week_types)]
            if self.week_types
            else rng.choices(list(WEEK_FREQUENCIES), weights=list(WEEK_FREQUENCIES.values()))[0]
        )
        self.weeks += 1
        lo, hi = MOVES[code]
        move = Decimal(str(round(rng.uniform(lo, hi), 2)))
        classified = {
            "week_start": monday.isoformat(),
            "week_type": code,
            "symbol": "SPY",
            "confidence": str(Decimal(rng.randint(60, 98)) / 100),
            "movement_pct": str(move),
            "reasoning": f"simulated {code} week",
        }
        events = [
            self._event(
                "ws2.protocol.events", "ws2.week.classified", self._at(monday, 8), classified
            )
        ]
        events += self._quotes(self._at(monday, 13, 35))
        friday = monday + timedelta(days=4)
        for account, book in self.books.items():
            events += self._entry(monday, code, account, book)
        for symbol, price in self.spot.items():  # the week's close
            noise = Decimal(str(round(rng.uniform(-0.5, 0.5), 2)))
            self.spot[symbol] = (price * (1 + (move + noise) / 100)).quantize(CENT)
        events += self._quotes(self._at(friday, 20))
        for account, book in self.books.items():
            events += self._close(friday, code, account, book)
        return sorted(events, key=lambda e: e.at)

    def _quotes(self, at: datetime) -> list[Event]:
        out = []
        for s, p in self.spot.items():
            quote = {
                "symbol": s,
                "bid": str(p - CENT),
                "ask": str(p + CENT),
                "last": str(p),
                "as_of": at.isoformat(),
            }
            out.append(self._event("ws4.market.events", "ws4.market.quote", at, quote))
        return out

    def _entry(self, monday: date, code: str, account: str, book: Book) -> Iterator[Event]:
        rng = self.rng
        days, (lo, hi), symbols = PROFILES[book.kind]
        idle = code in ("W-IDL", "P-DD")
        violation = rng.random() < self.violation_rate
        if book.option is not None or (idle and not violation):
            return
        wrong_day = violation and not idle and rng.random() < 0.5
        day = monday + timedelta(
            days=rng.choice([d for d in range(5) if d not in days] if wrong_day else list(days))
        )
        bad_delta = violation and not idle and not wrong_day
        delta = rng.randint(hi + 3, hi + 12) if bad_delta else rng.randint(lo, hi)
        held = [(s, q, c) for s, (q, c) in book.shares.items() if q >= 100]
        spot_of = {s: p * (1 + Decimal(rng.randint(-5, 5)) / 1000) for s, p in self.spot.items()}
        offset = Decimal(max(50 - delta, 1)) / 500  # farther out of the money for a lower delta
        if held:  # covered calls on the shares, never below what they cost
            symbol, qty, cost = held[0]
            spot = spot_of[symbol]
            strike = max(spot * (1 + offset), cost / qty).quantize(Decimal(1), ROUND_UP)
            option = Option(symbol, "call", strike, monday + timedelta(days=4), qty // 100)
        else:  # puts, as many as position sizing allows on the cash held
            symbol = rng.choice(symbols)
            spot = spot_of[symbol]
            strike = (spot * (1 - offset)).quantize(Decimal(1), ROUND_DOWN)
            collateral = min(book.cash, book.baseline) if book.kind == "generation" else book.cash
            room = collateral * SIZING[book.kind] / 100
            contracts = int(room / (strike * 100))
            if contracts < 1:
                return
            option = Option(symbol, "put", strike, monday + timedelta(days=4), contracts)
        premium = spot * Decimal(delta) * 3 / 10_000 * Decimal(rng.randint(80, 120)) / 100
        price = max(TICK, (premium / TICK).quantize(Decimal(1)) * TICK)
        at = self._at(day, rng.randint(14, 19), rng.randint(0, 59))
        fill = self._fill(account, at, option, delta, "sell_to_open", price)
        book.option = option
        book.cash += price * option.contracts * 100 - Decimal(fill.data["commission"])
        yield fill
        reasons = (
            (["entry outside the account's entry days"] if wrong_day else [])
            + ([f"delta {delta} outside {lo}-{hi}"] if bad_delta else [])
            + ([f"new entry in a {code} week"] if idle else [])
        )
        verdict = {
            "account_id": account,
            "trade_ref": fill.data["fill_id"],
            "compliant": not reasons,
            "violations": reasons,
            "week_type": code,
        }
        yield self._event(
            "ws2.protocol.events",
            "ws2.protocol.validated",
            at + timedelta(minutes=5),
            verdict,
            account,
        )

    def _fill(
        self, account: str, at: datetime, o: Option, delta: int, side: str, price: Decimal
    ) -> Event:
        data = {
            "fill_id": f"fill-{self._id()}",
            "order_id": f"ord-{self._id()[:8]}",
            "account_id": account,
            "symbol": o.symbol,
            "instrument_type": "option",
            "option_type": o.kind,
            "strike": str(o.strike),
            "expiration": o.expiration.isoformat(),
            "delta": str(Decimal(delta if o.kind == "call" else -delta) / 100),
            "side": side,
            "quantity": o.contracts,
            "price": str(price),
            "multiplier": 100,
            "commission": str((Decimal("0.65") * o.contracts).quantize(CENT)),
            "filled_at": at.isoformat(),
        }
        return self._event("ws4.market.events", "ws4.trade.filled", at, data, account)

    def _close(self, friday: date, code: str, account: str, book: Book) -> Iterator[Event]:
        o, spot = book.option, self.spot
        mark = Decimal(0)
        if o is not None:
            inside = max(
                Decimal(0),
                (o.strike - spot[o.symbol]) if o.kind == "put" else (spot[o.symbol] - o.strike),
            ).quantize(CENT)
            at = self._at(friday, 20)
            yield self._event(
                "ws4.market.events",
                "ws4.market.quote",
                at,
                {
                    "symbol": occ(o),
                    "bid": str(max(Decimal(0), inside - TICK)),
                    "ask": str(inside + TICK),
                    "last": str(inside),
                    "as_of": at.isoformat(),
                },
            )
            mid = (max(Decimal(0), inside - TICK) + inside + TICK) / 2
            if code in ("P-RO", "C-RO"):  # rolled: bought back before the close
                price = max(TICK, (mid / TICK).quantize(Decimal(1), ROUND_UP) * TICK)
                fill = self._fill(account, self._at(friday, 19), o, 20, "buy_to_close", price)
                book.cash -= price * o.contracts * 100 + Decimal(fill.data["commission"])
                book.option, o = None, None
                yield fill
            else:
                mark = -mid * o.contracts * 100
        held = sum((Decimal(q) * spot[s] for s, (q, _) in book.shares.items()), start=Decimal(0))
        valued = self._at(friday, 20, 30)
        yield self._event(
            "ws4.market.events",
            "ws4.account.valuation",
            valued,
            {
                "account_id": account,
                "positions_market_value": str((held + mark).quantize(CENT)),
                "as_of": valued.isoformat(),
            },
            account,
        )
        if o is None:
            return
        book.option = None
        at = self._at(friday, 21, 30)
        if inside == 0:
            yield self._event(
                "ws4.market.events",
                "ws4.option.expired",
                at,
                {
                    "expiration_id": f"exp-{self._id()}",
                    "account_id": account,
                    "symbol": o.symbol,
                    "option_type": o.kind,
                    "strike": str(o.strike),
                    "expiration": o.expiration.isoformat(),
                    "contracts": o.contracts,
                },
                account,
            )
            return
        count = o.contracts * 100
        qty, cost = book.shares.get(o.symbol, (0, Decimal(0)))
        if o.kind == "put":
            book.cash -= o.strike * count
            book.shares[o.symbol] = (qty + count, cost + o.strike * count)
        else:
            book.cash += o.strike * count
            left = qty - count
            book.shares[o.symbol] = (left, cost * left / qty if qty else Decimal(0))
            if left <= 0:
                del book.shares[o.symbol]
        yield self._event(
            "ws4.market.events",
            "ws4.option.assigned",
            at,
            {
                "assignment_id": f"asg-{self._id()}",
                "account_id": account,
                "symbol": o.symbol,
                "option_type": o.kind,
                "strike": str(o.strike),
                "contracts": o.contracts,
                "multiplier": 100,
                "expiration": o.expiration.isoformat(),
            },
            account,
        )
