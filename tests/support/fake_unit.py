"""An in-memory stand-in for the account service's unit of work, for handler tests without servers.

It keeps the real unit's promises that handlers rely on: accounts by id (unknown ones refused),
buffered rows, balances after each booking, the events of the command in hand, and the unit's
repositories (tests/support/fake_repositories.py) under the same names and signatures.
"""

import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import pytest

from services.account.domain import (
    Account,
    AccountConfig,
    AccountError,
    AccountStatus,
    AccountType,
    BalanceChange,
    UnknownAccount,
    apply_change,
)
from services.account.domain.marks import Marked, mark_all
from services.account.domain.positions import Move
from services.account.domain.settings import DEFAULT_SETTINGS, GrowthSettings
from services.account.handlers import events
from services.account.state.batch_positions import Valued
from services.account.state.port import AccountRow, LedgerRow, PortfolioRow, Unit
from shared.contracts.lifecycle import Payload, wire_data
from tests.support.fake_repositories import Accounts, Growth, Ledger, PositionStore

Row = dict[str, Any]


class FakeUnit:
    def __init__(self, *accounts: Account, now: datetime | None = None) -> None:
        self.stored: dict[
            UUID, tuple[Account, AccountRow]
        ] = {}  # accounts as the database holds them
        self.portfolios: dict[UUID, set[str]] = {}  # portfolio -> the account types it holds
        self.portfolio_rows: dict[UUID, PortfolioRow] = {}
        for a in accounts:
            self.stored[a.id] = (a, AccountRow(a.type.value, None, fork_eligible=False))
            self.portfolios.setdefault(a.portfolio_id, set()).add(a.type.value)
            self.portfolio_rows.setdefault(a.portfolio_id, portfolio_row(a.portfolio_id))
        self.booked: list[tuple[UUID, str, Any]] = []  # (account, type, amount)
        self.transactions: list[Row] = []  # every booked ledger row, with its account
        self.events: list[tuple[str, dict[str, Any]]] = []  # (type, data)
        self.settings: GrowthSettings = DEFAULT_SETTINGS
        self.at = now or datetime.now(UTC)
        self.command_id = "cmd-1"
        # What the repositories hold, kept here so that `attempt()` can roll it back too.
        self.forks: list[Row] = []
        self.merges: list[Row] = []
        self.reinvested: dict[tuple[UUID, str], Row] = {}
        self.refs: dict[tuple[str, str], str] = {}  # (kind, ref) -> fingerprint
        self.violated: dict[UUID, list[str]] = {}
        self.holdings: dict[tuple[UUID, str], Any] = {}  # (account, contract key) -> Holding
        self.moves: list[tuple[int | None, Any, Any]] = []  # (transaction id, before, move)
        self.quotes: dict[str, Any] = {}  # symbol -> Quote
        self.values: dict[UUID, Row] = {}  # account -> its last value row
        self.reversals: dict[int, int] = {}  # original transaction id -> its reversal's
        self.saved_settings: list[str] = []  # command ids of config updates
        self.accounts, self.ledger = Accounts(self), Ledger(self)
        self.growth, self.position_store = Growth(self), PositionStore(self)

    def types(self) -> list[str]:
        return [t for t, _ in self.events]

    def balance(self, account_id: UUID) -> Any:
        return self.stored[account_id][0].balance

    async def account(self, account_id: UUID) -> tuple[Account, AccountRow]:
        if account_id not in self.stored:
            raise UnknownAccount(f"no account {account_id}", subject=str(account_id))
        return self.stored[account_id]

    def add_portfolio(
        self,
        *,
        portfolio_id: UUID,
        name: str,
        parent: PortfolioRow | None = None,
        template: str | None = None,
        strategy: str | None = None,
        risk: dict[str, Any] | None = None,
    ) -> None:
        self.portfolios[portfolio_id] = set()
        self.portfolio_rows[portfolio_id] = portfolio_row(
            portfolio_id, parent, name=name, template=template, strategy=strategy, risk=risk
        )

    def add_account(
        self, account: Account, *, name: str, parent_id: UUID | None = None
    ) -> AccountRow:
        row = AccountRow(name, parent_id, fork_eligible=False)
        self.stored[account.id] = (account, row)
        self.portfolios.setdefault(account.portfolio_id, set()).add(account.type.value)
        if account.balance > 0:
            self.booked.append((account.id, "deposit", account.balance))
        return row

    def book(
        self,
        effect: BalanceChange,
        *,
        description: str,
        reference: str | None = None,
        week_type: str | None = None,
    ) -> tuple[Account, LedgerRow]:
        account, row = self.stored[effect.account_id]
        after = apply_change(account, effect)
        self.stored[account.id] = (after, row)
        self.booked.append((account.id, effect.type.value, effect.amount))
        tx = LedgerRow(
            len(self.transactions) + 1,
            effect.type.value,
            effect.amount,
            effect.balance_after,
            description,
            reference,
            week_type,
            self.at,
        )
        self.transactions.append({**asdict(tx), "account_id": account.id})
        return after, tx

    def emit(self, event: Payload, *, subject: str | None = None) -> None:
        # The real unit's own conversion: the same model gives the same type and wire data.
        self.events.append(wire_data(event))

    def balance_changed(self, account: Account, tx: LedgerRow) -> None:
        # The payload is the real unit's: both build it with the service's own event builder.
        self.emit(events.balance_changed(account, tx), subject=str(account.id))

    # docs/rules.md section 11, as AccountUnit keeps it for the batch (valued, marks, claim, move,
    # ...)

    async def valued(self, account_id: UUID) -> Valued:
        balance = self.stored[account_id][0].balance
        last = self.values.get(account_id, {"peak": balance, "breached": False})
        held = {k: h for (a, k), h in self.holdings.items() if a == account_id}
        count = len(self.violated.get(account_id, []))
        return Valued(
            held, last["peak"], last["breached"], Decimal(0), len(self.transactions), count
        )

    async def marks(self, account_id: UUID) -> list[Marked]:
        held = [h for (a, _), h in self.holdings.items() if a == account_id]
        return mark_all(held, {k: q for k, q in self.quotes.items()})

    async def claim(self, ref: tuple[str, str], *, fingerprint: str, account_id: UUID) -> str:
        if ref not in self.refs:
            self.refs[ref] = fingerprint
            return "new"
        return "duplicate" if self.refs[ref] == fingerprint else "conflict"

    async def move(
        self,
        account_id: UUID,
        moves: list[Move],
        *,
        transaction_id: int | None,
        cause: str,
        reference: str | None,
    ) -> None:
        for m in moves:
            key = (account_id, m.contract.key)
            self.moves.append((transaction_id, self.holdings.get(key), m))
            if m.after.quantity == 0:
                self.holdings.pop(key, None)
            else:
                self.holdings[key] = m.after

    def save_value(
        self,
        account_id: UUID,
        *,
        cash: Decimal,
        positions: Decimal,
        peak: Decimal,
        drawdown_pct: Decimal,
        breached: bool,
        broker: Decimal | None = None,
        flow: Decimal = Decimal(0),
        by_quote: bool = False,
    ) -> None:
        self.values[account_id] = {
            "cash": cash,
            "positions": positions,
            "broker": broker,
            "peak": peak,
            "breached": breached,
        }

    async def violations(
        self,
        account_id: UUID,
        *,
        ref: str | None,
        details: list[str],
        week_type: str | None,
        source: str,
    ) -> int:
        self.violated.setdefault(account_id, []).extend(details)
        return len(self.violated[account_id])

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        """As the real unit's nested savepoint: a failed step leaves nothing of its own."""
        # A shallow copy is enough: accounts and their rows are immutable, changes replace them.
        saved = {k: copy.copy(v) for k, v in vars(self).items() if k not in _REPOS}
        try:
            yield
        except BaseException:
            vars(self).update(saved)
            raise

    def set_account(self, account_id: UUID, **changes: Any) -> None:
        account, row = self.stored[account_id]
        self.stored[account_id] = (replace(account, **changes), row)


_REPOS = ("accounts", "ledger", "growth", "position_store")

if TYPE_CHECKING:  # mypy holds the fake to the port the handlers are typed against

    def _implements_the_port(unit: FakeUnit) -> Unit:
        return unit


def portfolio_row(
    portfolio_id: UUID, parent: PortfolioRow | None = None, **cols: Any
) -> PortfolioRow:
    return PortfolioRow(
        id=portfolio_id,
        name=cols.get("name", "portfolio"),
        template=cols.get("template"),
        strategy=cols.get("strategy"),
        risk=cols.get("risk") or {},
        parent_id=None if parent is None else parent.id,
        root_id=portfolio_id if parent is None else parent.root_id,
        generation=0 if parent is None else parent.generation + 1,
    )


def an_account(
    type_: AccountType = AccountType.REVENUE,
    balance: str = "1000.00",
    status: AccountStatus = AccountStatus.ACTIVE,
) -> Account:
    """An account as the store would load it: its balance all contributed, at its baseline."""
    return Account(
        id=uuid4(),
        portfolio_id=uuid4(),
        type=type_,
        status=status,
        balance=Decimal(balance),
        contributed_capital=Decimal(balance),
        baseline=Decimal(balance),
        config=AccountConfig.for_type(type_),
    )


async def refused(
    code: str, handler: Callable[[FakeUnit, Any], Awaitable[Any]], uow: FakeUnit, payload: Any
) -> None:
    """The handler refuses the payload with `code`."""
    with pytest.raises(AccountError) as caught:
        await handler(uow, payload)
    assert caught.value.code == code, caught.value
