"""Every account command's rules through its handler, on a fake unit of work: no servers.

What a handler decides (refusals with their codes, rows booked, events announced) is checked
here in milliseconds; tests/integration checks the same commands on Redis and PostgreSQL.
"""

from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from typing import Any
from uuid import uuid4

from services.account.domain import (
    AccountStatus,
    AccountType,
)
from services.account.handlers import accounts as handlers
from shared.contracts import account as c
from tests.support.fake_unit import FakeUnit, an_account
from tests.support.fake_unit import refused as refused_with

GEN, REV, COM = AccountType.GENERATION, AccountType.REVENUE, AccountType.COMPOUNDING
S = AccountStatus


account = an_account


async def refused(
    code: str, handler: Callable[[FakeUnit, Any], Awaitable[Any]], uow: FakeUnit, payload: object
) -> None:
    await refused_with(code, handler, uow, payload)
    assert uow.events == [], "a refused command announces nothing"


async def test_initialize_creates_three_funded_accounts_in_one_portfolio() -> None:
    uow = FakeUnit()
    await handlers.initialize(uow, c.InitializeSystem(total_capital="100000.00"))
    assert uow.types() == ["alluse.system.initialized"] + ["alluse.account.created"] * 3
    assert sum(amount for _, _, amount in uow.booked) == D("100000.00")
    assert len(uow.portfolios) == 1


async def test_initialize_refuses_an_unknown_template() -> None:
    p = c.InitializeSystem(total_capital="100000.00", template="no-such-template")
    await refused("invalid_configuration", handlers.initialize, FakeUnit(), p)


async def test_create_refuses_a_negative_initial_balance() -> None:
    p = c.CreateAccount(type="revenue", initial_balance="-1.00")
    await refused("invalid_amount", handlers.create, FakeUnit(), p)


async def test_create_refuses_an_unknown_portfolio_and_a_second_account_of_a_type() -> None:
    held = account(REV)
    await refused(
        "unknown_portfolio",
        handlers.create,
        FakeUnit(held),
        c.CreateAccount(type="revenue", portfolio_id=uuid4()),
    )
    await refused(
        "account_type_exists",
        handlers.create,
        FakeUnit(held),
        c.CreateAccount(type="revenue", portfolio_id=held.portfolio_id),
    )


async def test_create_adds_a_funded_account_beside_the_others() -> None:
    held = account(REV)
    uow = FakeUnit(held)
    p = c.CreateAccount(type="compounding", portfolio_id=held.portfolio_id, initial_balance="5.00")
    await handlers.create(uow, p)
    assert uow.types() == ["alluse.account.created"]
    assert uow.portfolios[held.portfolio_id] == {"revenue", "compounding"}
    assert [amount for _, _, amount in uow.booked] == [D("5.00")]


async def test_update_refuses_a_closed_account_and_an_invalid_config() -> None:
    closed = account(status=S.CLOSED, balance="0.00")
    await refused(
        "account_closed",
        handlers.update,
        FakeUnit(closed),
        c.UpdateAccount(account_id=closed.id, name="x"),
    )
    live = account()
    bad = c.UpdateAccount(account_id=live.id, config={"delta_min": "90", "delta_max": "10"})
    await refused("invalid_configuration", handlers.update, FakeUnit(live), bad)


async def test_update_renames() -> None:
    live = account()
    uow = FakeUnit(live)
    await handlers.update(uow, c.UpdateAccount(account_id=live.id, name="renamed"))
    assert uow.stored[live.id][1].name == "renamed"
    assert uow.types() == ["alluse.account.updated"]


async def test_deposit_books_and_announces_the_new_balance() -> None:
    live = account(balance="100.00")
    uow = FakeUnit(live)
    await handlers.deposit(uow, c.MoveMoney(account_id=live.id, amount="25.50"))
    assert uow.stored[live.id][0].balance == D("125.50")
    ((kind, data),) = uow.events  # the real builder's payload (the fake unit uses it too)
    assert kind == "alluse.account.balance_changed"
    assert (data["account_id"], data["balance"]) == (str(live.id), "125.50")
    tx = data["transaction"]
    assert (tx["type"], tx["amount"], tx["balance_after"]) == ("deposit", "25.50", "125.50")


async def test_deposit_refuses_unknown_and_inactive_accounts() -> None:
    await refused(
        "unknown_account",
        handlers.deposit,
        FakeUnit(),
        c.MoveMoney(account_id=uuid4(), amount="1.00"),
    )
    idle = account(status=S.INACTIVE)
    await refused(
        "account_not_active",
        handlers.deposit,
        FakeUnit(idle),
        c.MoveMoney(account_id=idle.id, amount="1.00"),
    )


async def test_withdrawal_refuses_more_than_available_and_any_from_a_com_acc() -> None:
    rev = account(REV, balance="100.00")  # 5 % cash buffer: 95.00 available
    await refused(
        "insufficient_funds",
        handlers.withdraw,
        FakeUnit(rev),
        c.MoveMoney(account_id=rev.id, amount="95.01"),
    )
    com = account(COM)
    await refused(
        "withdrawal_forbidden",
        handlers.withdraw,
        FakeUnit(com),
        c.MoveMoney(account_id=com.id, amount="1.00"),
    )


async def test_withdrawal_of_the_available_amount_books() -> None:
    rev = account(REV, balance="100.00")
    uow = FakeUnit(rev)
    await handlers.withdraw(uow, c.MoveMoney(account_id=rev.id, amount="95.00"))
    assert uow.stored[rev.id][0].balance == D("5.00")


async def test_status_change_refuses_a_move_out_of_a_final_status() -> None:
    closed = account(status=S.CLOSED, balance="0.00")
    await refused(
        "account_closed",
        handlers.set_status,
        FakeUnit(closed),
        c.SetStatus(account_id=closed.id, status="active"),
    )


async def test_status_change_announces_from_and_to() -> None:
    live = account()
    uow = FakeUnit(live)
    await handlers.set_status(uow, c.SetStatus(account_id=live.id, status="suspended"))
    assert uow.stored[live.id][0].status is S.SUSPENDED
    assert (
        uow.events[0][1]["from_status"] == "active" and uow.events[0][1]["to_status"] == "suspended"
    )


async def test_close_refuses_a_balance_and_closes_an_empty_account() -> None:
    full = account(balance="0.01")
    await refused(
        "balance_not_zero", handlers.close, FakeUnit(full), c.CloseAccount(account_id=full.id)
    )
    empty = account(balance="0.00")
    uow = FakeUnit(empty)
    await handlers.close(uow, c.CloseAccount(account_id=empty.id))
    assert uow.types() == ["alluse.account.status_changed", "alluse.account.closed"]
