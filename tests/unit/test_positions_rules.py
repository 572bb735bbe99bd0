"""docs/rules.md section 11 as pure rules: positions, marks, position sizing, the broker compared,
reversals."""

from datetime import date
from decimal import Decimal as D
from uuid import uuid4

import pytest

from services.account.domain import AccountConfig, AccountStatus, AccountType, TransactionType
from services.account.domain.marks import (
    Quote,
    compare_valuation,
    mark,
    mark_all,
    positions_value,
    sizing_breach,
)
from services.account.domain.model import Account
from services.account.domain.positions import (
    Contract,
    Holding,
    PositionNotOpen,
    assign,
    expire,
    fill_moves,
    shares,
    short_option,
)
from services.account.domain.reversal import (
    AlreadyReversed,
    Entry,
    ReversalNotReversible,
    TransferNotReversible,
    decide_reversal,
    undo_moves,
)

PUT = Contract("AAPL", "put", D("183"), date(2026, 12, 4), 100)
CALL = Contract("AAPL", "call", D("190"), date(2026, 12, 11), 100)


def test_rule_11_occ_symbol_names_an_option_series_and_a_ticker_names_shares() -> None:
    assert PUT.key == "AAPL  261204P00183000"
    assert (
        Contract("NVDA", "call", D("182.5"), date(2027, 1, 15), 100).key == "NVDA  270115C00182500"
    )
    assert shares("AAPL").key == "AAPL"


def test_rule_11_sell_to_open_is_a_short_position_whose_cost_is_the_premium_received() -> None:
    m = fill_moves(Holding(PUT), side="sell_to_open", quantity=5, price=D("2.10"))
    assert (m.quantity, m.cost) == (-5, D("-1050.00"))
    assert m.after == Holding(PUT, -5, D("-1050.00"))


def test_rule_11_buying_to_close_takes_out_the_average_cost_and_more_is_refused() -> None:
    held = Holding(PUT, -5, D("-1050.00"))
    part = fill_moves(held, side="buy_to_close", quantity=2, price=D("0.40"))
    assert part.after == Holding(PUT, -3, D("-630.00"))
    with pytest.raises(PositionNotOpen):
        fill_moves(part.after, side="buy_to_close", quantity=4, price=D("0.40"))
    with pytest.raises(PositionNotOpen):
        fill_moves(Holding(PUT), side="buy_to_close", quantity=1, price=D("0.40"))
    with pytest.raises(PositionNotOpen):  # selling shares that are not held is not short selling
        fill_moves(Holding(shares("AAPL")), side="sell", quantity=1, price=D("180"))


def test_rule_11_put_assigned_becomes_shares_at_the_strike() -> None:
    done = assign(Holding(PUT, -5, D("-1050.00")), Holding(shares("AAPL")), 5)
    assert done.option.after == Holding(PUT, 0, D("0.00"))
    assert done.stock.after == Holding(shares("AAPL"), 500, D("91500.00"))
    assert not done.short_stock
    with pytest.raises(PositionNotOpen):
        assign(Holding(PUT, -2, D("-400.00")), Holding(shares("AAPL")), 3)


def test_rule_11_call_assigned_delivers_shares_held_or_goes_short_stock() -> None:
    stock = Holding(shares("AAPL"), 500, D("91500.00"))
    done = assign(Holding(CALL, -5, D("-600.00")), stock, 5)
    assert done.stock.after == Holding(shares("AAPL"), 0, D("0.00"))
    assert done.stock.cost == D("-91500.00") and not done.short_stock
    naked = assign(Holding(CALL, -5, D("-600.00")), Holding(shares("AAPL"), 200, D("36600")), 5)
    assert naked.short_stock and naked.stock.after.quantity == -300
    assert naked.stock.after.cost == D("-57000.00")  # 300 short at the 190 strike


def test_rule_11_expiration_closes_the_option_at_no_cash_and_cannot_expire_more() -> None:
    m = expire(Holding(PUT, -5, D("-1050.00")), 5)
    assert m.after == Holding(PUT, 0, D("0.00")) and m.cost == D("1050.00")
    with pytest.raises(PositionNotOpen):
        expire(Holding(PUT, -1, D("-210.00")), 2)


def test_rule_11_marks_options_at_mid_shares_at_last_and_cost_without_a_quote() -> None:
    short = Holding(PUT, -5, D("-1050.00"))
    assert mark(short, Quote(D("0.90"), D("1.10"), D("2.00"))).value == D("-500.00")
    stock = Holding(shares("AAPL"), 500, D("91500.00"))
    assert mark(stock, Quote(D("179"), D("181"), D("180.50"))).value == D("90250.00")
    assert mark(stock, None).value == D("91500.00")
    quotes = {"AAPL": Quote(D("179"), D("181"), D("180.50"))}
    assert positions_value(mark_all([short, stock, Holding(CALL)], quotes)) == D("89200.00")


def test_rule_11_position_sizing_share_of_value_bounds_a_short_put() -> None:
    def breach_of(value: str, contracts: int) -> str | None:
        return sizing_breach(
            value=D(value), contracts=contracts, sizing_pct=D(90), strike=D("183"), multiplier=100
        )

    assert breach_of("100000.00", 4) is None  # 73,200 <= 90,000
    breach = breach_of("75000.00", 5)
    assert breach is not None and breach.startswith("position_sizing")


def test_rule_11_broker_valuation_beyond_tolerance_is_a_mismatch() -> None:
    args = {"own": D("90250.00"), "value": D("100000.00"), "tolerance_pct": D("0.5")}
    assert compare_valuation(broker=D("90700.00"), **args) is None  # 450 within 500
    found = compare_valuation(broker=D("89000.00"), **args)
    assert found is not None and found.difference == D("-1250.00")


def _account(balance: str) -> Account:
    return Account(
        id=uuid4(),
        portfolio_id=uuid4(),
        type=AccountType.GENERATION,
        status=AccountStatus.ACTIVE,
        balance=D(balance),
        contributed_capital=D("100000.00"),
        baseline=D("100000.00"),
        config=AccountConfig.for_type(AccountType.GENERATION),
    )


def test_rule_11_a_reversal_is_the_opposite_entry_once_and_never_of_a_transfer() -> None:
    premium = Entry(7, TransactionType.TRADE_PREMIUM, D("698.70"), None, None)
    effect = decide_reversal(_account("100698.70"), premium)
    assert (effect.type, effect.amount, effect.balance_after) == (
        TransactionType.TRADE_PREMIUM,
        D("-698.70"),
        D("100000.00"),
    )
    with pytest.raises(AlreadyReversed):
        decide_reversal(_account("1.00"), Entry(7, TransactionType.FEE, D("-1"), None, 9))
    with pytest.raises(ReversalNotReversible):
        decide_reversal(_account("1.00"), Entry(9, TransactionType.FEE, D("1"), 7, None))
    with pytest.raises(TransferNotReversible):
        decide_reversal(
            _account("1.00"), Entry(3, TransactionType.FORK_TRANSFER, D("-5"), None, None)
        )


def test_rule_11_undoing_a_put_assignment_needs_the_shares_still_held() -> None:
    done = assign(Holding(PUT, -5, D("-1050.00")), Holding(shares("AAPL")), 5)
    (back,) = undo_moves([(done.stock.after, done.stock)])
    assert back.after == Holding(shares("AAPL"), 0, D("0.00"))
    with pytest.raises(PositionNotOpen):
        undo_moves([(Holding(shares("AAPL")), done.stock)])  # called away since


def test_rule_11_an_assignment_takes_the_named_series_else_the_nearest_short() -> None:
    def put(day: int, quantity: int) -> Holding:
        return Holding(Contract("AAPL", "put", D("183"), date(2026, 11, day), 100), quantity)

    held = [put(27, -2), put(20, -1), put(13, 1)]  # the 13th is long: never assigned
    assert short_option(held, symbol="AAPL", option_type="put", strike=D("183")) == put(20, -1)
    named = short_option(
        held, symbol="AAPL", option_type="put", strike=D("183"), expiration=date(2026, 11, 27)
    )
    assert named == put(27, -2)
    assert (
        short_option(
            held, symbol="AAPL", option_type="put", strike=D("183"), expiration=date(2026, 11, 13)
        )
        is None
    )
