"""A realistic, deterministic week-by-week WS2 + WS4 feed (pure: no I/O).

Week types, drawn per week (documented frequencies, summing to 100 %): P-EW 30, C-PNO 15,
C-WAP 10, P-AWL 8, P-RO 8, C-RO 8, C-REC 5, W-IDL 5, P-AOL 4, C-WAP+ 4, P-DD 3.
Entries follow section 1: Gen-Acc sells on Thursday at |delta| 0.40-0.50, Rev-Acc on
Monday-Wednesday at 0.30-0.40, Com-Acc on Monday-Wednesday at 0.20-0.30 (deltas on the wire
are the option's, puts negative). About `violation_rate` of entries break one rule (wrong day
or delta out of range); W-IDL / P-DD weeks have no entries except such violations. Put
assignments come in P-AWL / P-AOL weeks, rolls (buy_to_close + sell_to_open) in P-RO / C-RO
weeks, a valuation per account every Friday after the close.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from random import Random
from typing import Any

WEEK_FREQUENCIES = {
    "P-EW": 30, "C-PNO": 15, "C-WAP": 10, "P-AWL": 8, "P-RO": 8, "C-RO": 8,
    "C-REC": 5, "W-IDL": 5, "P-AOL": 4, "C-WAP+": 4, "P-DD": 3,
}  # fmt: skip
PROFILES = {  # account type -> (entry weekdays, Monday = 0; |delta| range; underlyings)
    "generation": ((3,), (40, 50), ("TSLA", "NVDA", "AMD", "AAPL", "AMZN")),
    "revenue": ((0, 1, 2), (30, 40), ("AAPL", "AMZN", "MSFT", "GOOGL", "META")),
    "compounding": ((0, 1, 2), (20, 30), ("AAPL", "AMZN", "MSFT", "GOOGL", "META")),
}
SPOT = {"TSLA": 250, "NVDA": 480, "AMD": 150, "AAPL": 190, "AMZN": 150, "MSFT": 410,
        "GOOGL": 140, "META": 350}  # fmt: skip
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


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


class Feed:
    def __init__(self, accounts: list[tuple[str, str]], *, seed: int, violation_rate: float = 0.05):
        self.accounts, self.rng, self.violation_rate = accounts, Random(seed), violation_rate  # noqa: S311

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), UTC)

    def week(self, monday: date) -> list[Event]:
        rng = self.rng
        code = rng.choices(list(WEEK_FREQUENCIES), weights=list(WEEK_FREQUENCIES.values()))[0]
        spy_move = Decimal(rng.randint(-400, 500)) / 100
        classified = {
            "week_start": monday.isoformat(), "week_type": code, "symbol": "SPY",
            "confidence": str(Decimal(rng.randint(60, 98)) / 100), "movement_pct": str(spy_move),
            "reasoning": f"simulated {code} week",
        }  # fmt: skip
        events = [Event("ws2.protocol.events", WS2, "ws2.week.classified", self._at(monday, 8),
                        classified, self._id())]  # fmt: skip
        for account, kind in self.accounts:
            events += self._account_week(monday, code, account, kind)
        return sorted(events, key=lambda e: e.at)

    def _account_week(self, monday: date, code: str, account: str, kind: str) -> Iterator[Event]:
        rng = self.rng
        days, (lo, hi), symbols = PROFILES[kind]
        idle = code in ("W-IDL", "P-DD")
        violation = rng.random() < self.violation_rate
        if not idle or violation:
            wrong_day = violation and not idle and rng.random() < 0.5
            day_choices = [d for d in range(5) if d not in days] if wrong_day else list(days)
            day = monday + timedelta(days=rng.choice(day_choices))
            bad_delta = violation and not idle and not wrong_day
            delta = rng.randint(hi + 3, hi + 12) if bad_delta else rng.randint(lo, hi)
            option = "call" if code.startswith("C-") else "put"
            symbol = rng.choice(symbols)
            fill = self._fill(account, day, symbol, option, delta, "sell_to_open")
            yield fill
            reasons = (["entry outside the account's entry days"] if wrong_day else []) + (
                [f"delta {delta} outside {lo}-{hi}"] if bad_delta else []
            ) + ([f"new entry in a {code} week"] if idle else [])  # fmt: skip
            verdict = {"account_id": account, "trade_ref": fill.data["fill_id"],
                       "compliant": not reasons, "violations": reasons, "week_type": code}  # fmt: skip
            yield Event("ws2.protocol.events", WS2, "ws2.protocol.validated",
                        fill.at + timedelta(minutes=5), verdict, self._id(), account)  # fmt: skip
            friday = monday + timedelta(days=4)
            if code in ("P-AWL", "P-AOL") and option == "put" and rng.random() < 0.5:
                yield self._assignment(account, friday, fill.data)
            if code in ("P-RO", "C-RO"):
                yield self._fill(account, friday, symbol, option, delta, "buy_to_close", fill.data)
        value = Decimal(rng.randint(-500_000, 200_000)) / 100
        valuation = {"account_id": account, "positions_market_value": str(value),
                     "as_of": self._at(monday + timedelta(days=4), 21).isoformat()}  # fmt: skip
        yield Event("ws4.market.events", WS4, "ws4.account.valuation",
                    self._at(monday + timedelta(days=4), 21), valuation, self._id(), account)  # fmt: skip

    def _fill(self, account: str, day: date, symbol: str, option: str, delta: int, side: str,
              opened: dict[str, Any] | None = None) -> Event:  # fmt: skip
        rng = self.rng
        at = self._at(day, rng.randint(14, 19), rng.randint(0, 59))
        spot = Decimal(SPOT[symbol]) * (1 + Decimal(rng.randint(-30, 30)) / 1000)
        if opened:
            strike, quantity = Decimal(opened["strike"]), opened["quantity"]
        else:
            offset = Decimal(50 - delta) / 500  # farther out of the money for a lower delta
            strike = (spot * (1 - offset if option == "put" else 1 + offset)).quantize(Decimal(1))
            quantity = rng.randint(1, 5)
        premium = spot * Decimal(delta) / 10_000 * Decimal(rng.randint(80, 120)) / 100
        price = max(TICK, (premium / TICK).quantize(Decimal(1)) * TICK)
        data = {
            "fill_id": f"fill-{self._id()}", "order_id": f"ord-{self._id()[:8]}",
            "account_id": account, "symbol": symbol, "instrument_type": "option",
            "option_type": option, "strike": str(strike),
            "expiration": (day + timedelta(days=4 - day.weekday())).isoformat(),
            "delta": str(Decimal(delta if option == "call" else -delta) / 100), "side": side,
            "quantity": quantity, "price": str(price), "multiplier": 100,
            "commission": str((Decimal("0.65") * quantity).quantize(CENT)),
            "filled_at": at.isoformat(),
        }  # fmt: skip
        return Event("ws4.market.events", WS4, "ws4.trade.filled", at, data, self._id(), account)

    def _assignment(self, account: str, friday: date, fill: dict[str, Any]) -> Event:
        data = {"assignment_id": f"asg-{self._id()}", "account_id": account,
                "symbol": fill["symbol"], "option_type": fill["option_type"],
                "strike": fill["strike"], "contracts": fill["quantity"], "multiplier": 100}  # fmt: skip
        return Event("ws4.market.events", WS4, "ws4.option.assigned", self._at(friday, 21, 30),
                     data, self._id(), account)  # fmt: skip
