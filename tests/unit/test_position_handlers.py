"""Reversals and every upstream effect (fills, assignments, expirations, quotes, valuations,
WS2 verdicts) through their handlers, on a fake unit of work: no servers. Cash and positions
move together, a repeated broker id changes nothing, breaches are recorded and announced."""

from datetime import UTC, date, datetime
from decimal import Decimal as D
from functools import partial
from typing import Any

from services.account.domain import Account, AccountStatus
from services.account.domain.marks import Quote
from services.account.handlers import accounts as handlers
from services.account.handlers import corrections, effects, trades, valuation
from shared.contracts import account as c
from tests.support.fake_unit import FakeUnit, an_account, refused

NOW = datetime(2026, 3, 5, 15, tzinfo=UTC)
EXPIRY = date(2026, 3, 20)


account = partial(an_account, balance="100000.00")


def put_sale(a: Account, **extra: Any) -> effects.TradeEffect:
    return effects.TradeEffect(
        **{
            "fill_id": "f-1",
            "order_id": "o-1",
            "account_id": str(a.id),
            "symbol": "SPY",
            "instrument_type": "option",
            "option_type": "put",
            "strike": "500",
            "expiration": EXPIRY,
            "delta": "-0.30",
            "side": "sell_to_open",
            "quantity": 1,
            "price": "2.50",
            "commission": "0.65",
            "filled_at": NOW.isoformat(),
            "week_type": "P-EW",
            **extra,
        }
    )


def positions(uow: FakeUnit, a: Account) -> dict[str, int]:
    return {key: h.quantity for (owner, key), h in uow.holdings.items() if owner == a.id}


async def test_a_fill_books_its_cash_and_opens_its_position() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    assert uow.balance(rev.id) == D("100249.35")  # 250 premium less 0.65 commission
    assert list(positions(uow, rev).values()) == [-1]
    assert uow.types()[:2] == ["alluse.account.balance_changed", "alluse.account.position_changed"]


async def test_a_repeated_fill_changes_nothing_and_other_figures_under_its_id_are_refused() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    before, booked = uow.balance(rev.id), len(uow.booked)
    await trades.trade_filled(uow, put_sale(rev))
    assert (uow.balance(rev.id), len(uow.booked)) == (before, booked)
    await refused("fill_conflict", trades.trade_filled, uow, put_sale(rev, price="3.00"))


async def test_a_fill_outside_the_protocol_is_booked_and_its_breach_announced() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev, delta="-0.90"))
    assert uow.balance(rev.id) == D("100249.35")  # the money moved at the broker: it is booked
    assert uow.violated[rev.id] and uow.types()[-1] == "alluse.account.protocol_violation"


async def test_a_fill_on_an_inactive_account_is_refused() -> None:
    idle = account(status=AccountStatus.SUSPENDED)
    await refused(
        "account_not_active", trades.trade_filled, FakeUnit(idle, now=NOW), put_sale(idle)
    )


def assignment(a: Account, contracts: int = 1) -> effects.AssignmentEffect:
    return effects.AssignmentEffect(
        assignment_id="a-1",
        account_id=str(a.id),
        symbol="SPY",
        option_type="put",
        strike="500",
        contracts=contracts,
    )


async def test_an_assignment_turns_the_short_put_into_shares_bought_at_the_strike() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    await trades.option_assigned(uow, assignment(rev))
    assert positions(uow, rev) == {"SPY": 100}
    assert uow.balance(rev.id) == D("50249.35")


async def test_an_assignment_without_a_short_option_is_refused() -> None:
    rev = account()
    await refused(
        "position_not_open", trades.option_assigned, FakeUnit(rev, now=NOW), assignment(rev)
    )


def expiration(a: Account) -> effects.ExpirationEffect:
    return effects.ExpirationEffect(
        expiration_id="e-1",
        account_id=str(a.id),
        symbol="SPY",
        option_type="put",
        strike="500",
        expiration=EXPIRY,
        contracts=1,
    )


async def test_an_expiration_closes_the_option_and_keeps_the_premium() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    await trades.option_expired(uow, expiration(rev))
    assert positions(uow, rev) == {} and uow.balance(rev.id) == D("100249.35")
    await refused(
        "position_not_open", trades.option_expired, FakeUnit(rev, now=NOW), expiration(rev)
    )


async def test_a_quote_is_kept_for_marks() -> None:
    uow = FakeUnit(now=NOW)
    q = effects.QuoteEffect(symbol="SPY", bid="500.10", ask="500.30", last="500.20", as_of=NOW)
    await valuation.market_quote(uow, q)
    assert uow.quotes["SPY"] == Quote(D("500.10"), D("500.30"), D("500.20")) and uow.events == []


async def test_a_broker_valuation_beyond_the_tolerance_is_announced() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    close = effects.ValuationEffect(
        account_id=str(rev.id), positions_market_value="-250.00", as_of=NOW
    )
    await valuation.account_valuation(uow, close)
    assert "alluse.account.valuation_mismatch" not in uow.types()
    far = effects.ValuationEffect(
        account_id=str(rev.id), positions_market_value="-9000.00", as_of=NOW
    )
    await valuation.account_valuation(uow, far)
    assert uow.types()[-1] == "alluse.account.valuation_mismatch"
    assert uow.values[rev.id]["broker"] == D("-9000.00")


async def test_a_ws2_verdict_records_violations_only_when_not_compliant() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    ok = effects.ValidationEffect(
        account_id=str(rev.id), trade_ref="t-1", compliant=True, violations=[]
    )
    await effects.protocol_validated(uow, ok)
    assert uow.events == []
    bad = effects.ValidationEffect(
        account_id=str(rev.id), trade_ref="t-2", compliant=False, violations=["delta out of range"]
    )
    await effects.protocol_validated(uow, bad)
    assert uow.violated[rev.id] == ["delta out of range"]
    assert uow.events[-1][1]["violation_count"] == 1
    unknown = effects.ValidationEffect(
        account_id="nobody", trade_ref="t", compliant=True, violations=[]
    )
    await refused("unknown_account", effects.protocol_validated, uow, unknown)


async def test_a_reversal_books_the_opposite_entry_once() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await handlers.deposit(uow, c.MoveMoney(account_id=rev.id, amount="500.00"))
    original = uow.transactions[-1]["id"]
    p = c.ReverseTransaction(transaction_id=original, reason="wrong account")
    await corrections.reverse(uow, p)
    assert uow.balance(rev.id) == D("100000.00")
    assert uow.types()[-1] == "alluse.account.reversed"
    await refused("already_reversed", corrections.reverse, uow, p)
    unknown = c.ReverseTransaction(transaction_id=999, reason="x")
    await refused("unknown_transaction", corrections.reverse, uow, unknown)


async def test_a_reversed_fill_takes_its_position_back() -> None:
    rev = account()
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    fill = uow.transactions[-1]["id"]
    await corrections.reverse(uow, c.ReverseTransaction(transaction_id=fill, reason="broker bust"))
    assert positions(uow, rev) == {} and uow.balance(rev.id) == D("100000.00")
    assert uow.events[-1][1]["positions_undone"] == 1


async def test_a_quote_revalues_the_accounts_holding_it_at_once() -> None:
    rev = account()  # Rev-Acc: a drawdown beyond 10 % is announced
    uow = FakeUnit(rev, now=NOW)
    await trades.trade_filled(uow, put_sale(rev))
    crash = effects.QuoteEffect(
        symbol="SPY   260320P00500000", bid="119.00", ask="121.00", last="120.00", as_of=NOW
    )
    await valuation.market_quote(uow, crash)
    assert "alluse.account.drawdown_breached" in uow.types()
    assert uow.values[rev.id]["positions"] == D("-12000.00")
