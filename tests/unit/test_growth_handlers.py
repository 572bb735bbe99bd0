"""Fork, merge, reinvest and config.update through their handlers, on a fake unit of work: no
servers. The rules themselves are tested pure (test_growth_*.py); here, what each command does
with them: refusals with their codes, the rows it books and the events it announces."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    BalanceChange,
    TransactionType,
    change,
)
from services.account.handlers import accounts as handlers
from services.account.handlers import growth, reinvestment
from shared.contracts import account as c
from tests.support.fake_unit import FakeUnit
from tests.support.fake_unit import refused as refused_with

GEN, REV, COM = AccountType.GENERATION, AccountType.REVENUE, AccountType.COMPOUNDING
NOW = datetime(2026, 3, 5, 15, tzinfo=UTC)


def account(
    type_: AccountType,
    balance: str,
    portfolio: UUID | None = None,
    baseline: str | None = None,
    status: AccountStatus = AccountStatus.ACTIVE,
) -> Account:
    base = D(baseline or balance)
    return Account(
        id=uuid4(),
        portfolio_id=portfolio or uuid4(),
        type=type_,
        status=status,
        balance=D(balance),
        contributed_capital=base,
        baseline=base,
        config=AccountConfig.for_type(type_),
    )


async def refused(
    code: str, handler: Callable[[FakeUnit, Any], Awaitable[Any]], uow: FakeUnit, payload: object
) -> None:
    await refused_with(code, handler, uow, payload)


def family() -> tuple[FakeUnit, Account, Account]:
    """A root portfolio: a Gen-Acc 60,000 over its baseline and a Com-Acc."""
    root = uuid4()
    gen = account(GEN, "160000.00", root, baseline="100000.00")
    com = account(COM, "50000.00", root)
    return FakeUnit(gen, com, now=NOW), gen, com


async def test_fork_moves_the_surplus_to_a_new_child_portfolio() -> None:
    uow, gen, _ = family()
    await growth.fork(uow, c.ForkAccount(account_id=gen.id))
    assert uow.balance(gen.id) == D("100000.00")
    (fork,) = uow.forks
    children = [a for a, _ in uow.stored.values() if a.portfolio_id == fork["child"]]
    assert sorted(a.type for a in children) == [COM, GEN]
    assert sum(a.balance for a in children) == D("60000.00")
    assert uow.portfolio_rows[fork["child"]].parent_id == gen.portfolio_id
    assert uow.types()[-1] == "alluse.account.forked"
    assert uow.events[-1][1]["automatic"] is False


async def test_fork_refuses_a_gen_acc_below_its_threshold_and_a_second_fork_while_cooling() -> None:
    uow, gen, _ = family()
    poor = account(GEN, "120000.00", baseline="100000.00")
    uow2 = FakeUnit(poor, now=NOW)
    await refused("not_fork_eligible", growth.fork, uow2, c.ForkAccount(account_id=poor.id))
    await growth.fork(uow, c.ForkAccount(account_id=gen.id))
    uow.set_account(gen.id, balance=D("160000.00"))
    uow.events.clear()
    await refused("fork_cooling_period", growth.fork, uow, c.ForkAccount(account_id=gen.id))


async def test_an_automatic_fork_follows_income_that_crosses_the_threshold() -> None:
    uow, gen, _ = family()
    uow.set_account(gen.id, balance=D("140000.00"))
    premium = _premium(uow.stored[gen.id][0], "20000.00")
    await handlers.book(uow, premium, description="premium")  # as a fill books it
    assert uow.types()[-1] == "alluse.account.forked"
    assert uow.forks[0]["automatic"] is True and uow.balance(gen.id) == D("100000.00")


async def test_a_deposit_raises_the_baseline_and_forks_nothing() -> None:
    uow, gen, _ = family()
    uow.set_account(gen.id, balance=D("140000.00"))
    await handlers.deposit(uow, c.MoveMoney(account_id=gen.id, amount="20000.00"))
    assert uow.types() == ["alluse.account.balance_changed"] and uow.forks == []


async def test_merge_folds_a_child_portfolio_into_its_parents_com_acc() -> None:
    uow, gen, com = family()
    await growth.fork(uow, c.ForkAccount(account_id=gen.id))
    child = uow.forks[0]["child"]
    uow.events.clear()
    await growth.merge(uow, c.MergePortfolio(portfolio_id=child))
    assert uow.balance(com.id) == D("110000.00")
    kids = [a for a, _ in uow.stored.values() if a.portfolio_id == child]
    assert {a.status for a in kids} == {AccountStatus.MERGED}
    assert all(a.balance == 0 for a in kids)
    assert uow.types()[-1] == "alluse.account.merged"
    assert uow.merges[0]["total"] == D("60000.00")


async def test_merge_refuses_an_unknown_portfolio_and_a_root() -> None:
    uow, gen, _ = family()
    await refused("unknown_portfolio", growth.merge, uow, c.MergePortfolio(portfolio_id=uuid4()))
    await refused(
        "not_a_child_portfolio", growth.merge, uow, c.MergePortfolio(portfolio_id=gen.portfolio_id)
    )


def trading_rev() -> tuple[FakeUnit, Account]:
    rev = account(REV, "10000.00")
    uow = FakeUnit(rev, now=NOW)
    uow.at = datetime(2025, 11, 15, tzinfo=UTC)  # inside the period that fell due (2025-Q4)
    uow.book(_premium(rev, "1000.00"), description="premium")
    uow.at = NOW
    return uow, rev


def _premium(a: Account, amount: str) -> BalanceChange:
    return change(a, TransactionType.TRADE_PREMIUM, D(amount))


async def test_reinvest_allocates_the_periods_net_income_once() -> None:
    uow, rev = trading_rev()
    await reinvestment.reinvest(uow, c.Reinvest(account_id=rev.id))
    ((key, done),) = uow.reinvested.items()
    assert key[0] == rev.id and done["allocation"].net_income == D("1000.00")
    assert uow.types() == ["alluse.account.reinvested", "alluse.account.reinvestment_completed"]
    await refused("already_reinvested", reinvestment.reinvest, uow, c.Reinvest(account_id=rev.id))


async def test_reinvest_refuses_a_gen_acc_and_a_quarter_not_yet_due() -> None:
    gen = account(GEN, "1000.00")
    uow = FakeUnit(gen, now=NOW)
    await refused(
        "not_a_reinvesting_account", reinvestment.reinvest, uow, c.Reinvest(account_id=gen.id)
    )
    await refused("quarter_not_due", reinvestment.reinvest, uow, c.Reinvest(quarter="2026-Q4"))


async def test_reinvest_of_every_account_counts_those_done_before() -> None:
    uow, rev = trading_rev()
    await reinvestment.reinvest(uow, c.Reinvest(account_id=rev.id))
    uow.events.clear()
    await reinvestment.reinvest(uow, c.Reinvest())
    assert uow.events[-1][1]["already_reinvested"] == 1


async def test_config_update_applies_growth_and_account_settings_together() -> None:
    uow, gen, com = family()
    p = c.UpdateConfig(
        growth={"cooling_period_hours": 12},
        accounts={"fork_threshold": "75000"},
        account_type="generation",
    )
    await reinvestment.update_config(uow, p)
    assert uow.settings.cooling_period_hours == 12
    assert uow.stored[gen.id][0].config.fork_threshold == D("75000")
    assert uow.stored[com.id][0].config == com.config  # another type: untouched
    assert uow.types() == ["alluse.config.updated"]
    assert uow.events[0][1]["accounts_updated"] == 1


async def test_config_update_refuses_everything_when_one_part_is_invalid() -> None:
    uow, _, _ = family()
    p = c.UpdateConfig(
        growth={"cooling_period_hours": 12}, accounts={"delta_min": "90", "delta_max": "10"}
    )
    await refused("invalid_configuration", reinvestment.update_config, uow, p)
    assert uow.settings.cooling_period_hours != 12 and uow.saved_settings == []
    catalog = c.UpdateConfig(growth={"templates": {}})
    await refused("invalid_configuration", reinvestment.update_config, uow, catalog)
