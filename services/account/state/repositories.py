"""The unit of work's repositories: each store module's statements, on the unit's connection.

`uow.accounts.get_portfolio(portfolio_id=...)` is `store.accounts.get_portfolio(uow.db, ...)`:
the same statement, run inside the command's savepoint after what the batch buffered. Handlers
reach state only through their unit, so a fake unit with in-memory repositories of the same
names drives them in tests without servers (tests/support/fake_unit.py).
"""

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from services.account.state.store import accounts, growth, ledger, reads
from services.account.state.store import positions as position_store
from shared.infra.stream.unit import Sql

P = ParamSpec("P")
R = TypeVar("R")


class Repository:
    def __init__(self, db: Sql) -> None:
        self.db = db


def on_db(fn: Callable[Concatenate[Sql, P], R]) -> Callable[Concatenate[Repository, P], R]:
    """A store function as a repository method: the repository's connection goes first."""

    def method(self: Repository, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return fn(self.db, *args, **kwargs)

    method.__name__ = method.__qualname__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method


class Accounts(Repository):
    """Accounts and portfolios (store/accounts.py) and the reads handlers need (reads.py)."""

    portfolio_types = on_db(accounts.portfolio_types)
    update_account = on_db(accounts.update_account)
    set_status = on_db(accounts.set_status)
    flag_fork_eligible = on_db(accounts.flag_fork_eligible)
    get_portfolio = on_db(accounts.get_portfolio)
    lock_portfolio_accounts = on_db(accounts.lock_portfolio_accounts)
    lock_live_accounts = on_db(accounts.lock_live_accounts)
    get_account = on_db(reads.get_account)
    tree_accounts = on_db(reads.tree_accounts)


class Ledger(Repository):
    """Business time (store/ledger.py); ledger rows are the unit's own buffered writes."""

    effective_now = on_db(ledger.effective_now)


class Growth(Repository):
    """Growth settings, forks, merges and reinvestments (store/growth.py)."""

    growth_settings = on_db(growth.growth_settings)
    save_growth_settings = on_db(growth.save_growth_settings)
    fork_times = on_db(growth.fork_times)
    insert_fork = on_db(growth.insert_fork)
    merge_target = on_db(growth.merge_target)
    insert_merge = on_db(growth.insert_merge)
    reinvesting_accounts = on_db(growth.reinvesting_accounts)
    trading_rows = on_db(growth.trading_rows)
    insert_reinvestment = on_db(growth.insert_reinvestment)
    reinvestment_done = on_db(growth.reinvestment_done)


class PositionStore(Repository):
    """docs/rules.md section 11's statements a handler runs itself (position_store.py): what a fork
    or a merge moves, quotes, reversals and the as-of reads. Fills read and move positions through
    the unit's own batch view (uow.valued, uow.move), not here."""

    marked_holdings = on_db(position_store.marked_holdings)
    holdings = on_db(position_store.holdings)
    quotes = on_db(position_store.quotes)
    save_quote = on_db(position_store.save_quote)
    holders = on_db(position_store.holders)
    drop_quote_points = on_db(position_store.drop_quote_points)
    entry = on_db(position_store.entry)
    moves_of = on_db(position_store.moves_of)
    mark_reversal = on_db(position_store.mark_reversal)
    holdings_at = on_db(position_store.holdings_at)
