"""The simulated feed follows the protocol it simulates, and a seed makes it repeatable."""

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from services.run import DEMO_WEEKS
from shared.contracts.envelope import decode
from shared.contracts.upstream import UPSTREAM_TYPES, WEEK_TYPES
from shared.simulators.feed import PROFILES, SIZING, WEEK_FREQUENCIES, Feed
from shared.simulators.upstream import fields

ACCOUNTS = [("g", "generation"), ("r", "revenue"), ("c", "compounding")]
MONDAY = date(2026, 1, 5)


def year(seed: int, violation_rate: float = 0.05) -> list[Any]:
    feed = Feed(ACCOUNTS, seed=seed, violation_rate=violation_rate)
    return [e for w in range(52) for e in feed.week(MONDAY + timedelta(weeks=w))]


def test_the_eleven_week_types_have_documented_frequencies_summing_to_100() -> None:
    assert set(WEEK_FREQUENCIES) == set(WEEK_TYPES) and sum(WEEK_FREQUENCIES.values()) == 100


def test_the_same_seed_gives_the_same_feed_and_another_seed_another() -> None:
    assert year(1) == year(1) and year(1) != year(2)


def test_every_event_is_a_valid_cloudevent_of_the_contract() -> None:
    events = year(3)
    kinds = set()
    for event in events:
        ev = decode({k.encode(): v.encode() for k, v in fields(event, "a.b.c").items()})
        model = UPSTREAM_TYPES[ev.type].model_validate(ev.data)
        assert set(model.model_dump(exclude_unset=True)) == set(ev.data)  # every field read
        kinds.add(ev.type)
    assert len(events) > 100 and {"ws4.trade.filled", "ws2.week.classified"} <= kinds


def test_compliant_entries_are_on_entry_days_within_delta_ranges() -> None:
    kinds = dict(ACCOUNTS)
    events = year(4, violation_rate=0.0)
    entries = [e for e in events if e.data.get("side") == "sell_to_open"]
    assert entries
    for e in entries:
        days, (lo, hi), symbols = PROFILES[kinds[e.data["account_id"]]]
        assert e.at.weekday() in days and e.data["symbol"] in symbols
        assert lo <= abs(Decimal(e.data["delta"])) * 100 <= hi
    weeks = {e.data["week_start"]: e.data["week_type"] for e in events if "week_start" in e.data}
    idle = {w for w, code in weeks.items() if code in ("W-IDL", "P-DD")}
    assert not [e for e in entries if str(e.at.date() - timedelta(days=e.at.weekday())) in idle]


def test_violations_assignments_and_valuations_occur() -> None:
    events = year(5, violation_rate=0.2)
    types = Counter(e.type for e in events)
    assert types["ws4.option.assigned"] > 0 and types["ws4.account.valuation"] == 52 * 3
    verdicts = [e.data for e in events if e.type == "ws2.protocol.validated"]
    assert any(not v["compliant"] for v in verdicts) and any(v["compliant"] for v in verdicts)


def test_puts_are_sized_within_position_sizing_and_cash_never_goes_negative() -> None:
    cash = {"g": Decimal("100000.00"), "r": Decimal("75000.00"), "c": Decimal("75000.00")}
    feed = Feed(ACCOUNTS, seed=8, violation_rate=0.0, cash=dict(cash))
    kinds = dict(ACCOUNTS)
    for w in range(104):
        before = {a: b.cash for a, b in feed.books.items()}
        for e in feed.week(MONDAY + timedelta(weeks=w)):
            d = e.data
            if (
                e.type == "ws4.trade.filled"
                and d["side"] == "sell_to_open"
                and d["option_type"] == "put"
            ):
                at_risk = Decimal(d["strike"]) * d["quantity"] * 100
                assert at_risk <= before[d["account_id"]] * SIZING[kinds[d["account_id"]]] / 100
        assert min(b.cash for b in feed.books.values()) >= 0


def test_the_demo_weeks_assign_the_generation_puts_and_keep_the_shares_to_show() -> None:
    for seed in range(30):  # whatever the seed, `make run` shows an assignment
        feed = Feed(ACCOUNTS, seed=seed, week_types=DEMO_WEEKS.split(","))
        feed.week(MONDAY)
        second = feed.week(MONDAY + timedelta(weeks=1))
        assigned = [e.data for e in second if e.type == "ws4.option.assigned"]
        assert any(a["account_id"] == "g" and a["option_type"] == "put" for a in assigned), seed
        for week in (2, 3):  # covered calls on the shares, which the demo's table then shows
            feed.week(MONDAY + timedelta(weeks=week))
        assert feed.books["g"].shares and min(b.cash for b in feed.books.values()) >= 0, seed
