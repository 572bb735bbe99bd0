"""An in-memory stand-in for the account service's unit of work, for handler tests without servers.

It keeps the real unit's promises that handlers rely on: accounts by id (unknown ones refused),
buffered rows, balances after each booking, and the events of the command in hand.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    BalanceChange,
    UnknownAccount,
    apply_change,
)
from services.account.domain.settings import DEFAULT_SETTINGS, GrowthSettings

Row = dict[str, Any]


class FakeUnit:
    def __init__(self, *accounts: Account) -> None:
        self.accounts: dict[UUID, tuple[Account, Row]] = {
            a.id: (a, {"name": a.type.value, "parent_id": None, "fork_eligible": False})
            for a in accounts
        }
        self.portfolios: dict[UUID, set[str]] = {}
        for a in accounts:
            self.portfolios.setdefault(a.portfolio_id, set()).add(a.type.value)
        self.ledger: list[tuple[UUID, str, Any]] = []  # (account, type, amount)
        self.events: list[tuple[str, dict[str, Any]]] = []  # (type, data)
        self.growth: GrowthSettings = DEFAULT_SETTINGS
        self.command_id = "cmd-1"

    def types(self) -> list[str]:
        return [t for t, _ in self.events]

    async def account(self, account_id: UUID) -> tuple[Account, Row]:
        if account_id not in self.accounts:
            raise UnknownAccount(f"no account {account_id}", subject=str(account_id))
        return self.accounts[account_id]

    def add_portfolio(self, *, portfolio_id: UUID, **_: Any) -> None:
        self.portfolios[portfolio_id] = set()

    def add_account(self, account: Account, *, name: str, parent_id: UUID | None = None) -> Row:
        row = {"name": name, "parent_id": parent_id, "fork_eligible": False}
        self.accounts[account.id] = (account, row)
        self.portfolios.setdefault(account.portfolio_id, set()).add(account.type.value)
        if account.balance > 0:
            self.ledger.append((account.id, "deposit", account.balance))
        return row

    async def portfolio_types(self, portfolio_id: UUID) -> set[str] | None:
        return self.portfolios.get(portfolio_id)

    async def save_account(self, account_id: UUID, *, name: str, config: AccountConfig) -> None:
        account, row = self.accounts[account_id]
        self.accounts[account_id] = (replace(account, config=config), {**row, "name": name})

    async def set_status(self, account_id: UUID, status: AccountStatus) -> None:
        account, row = self.accounts[account_id]
        self.accounts[account_id] = (replace(account, status=status), row)

    async def settings(self) -> GrowthSettings:
        return self.growth

    def book(self, effect: BalanceChange, *, description: str, reference: str | None = None,
             week_type: str | None = None) -> tuple[Account, Row]:  # fmt: skip
        account, row = self.accounts[effect.account_id]
        after = apply_change(account, effect)
        self.accounts[account.id] = (after, row)
        self.ledger.append((account.id, effect.type.value, effect.amount))
        tx = {"id": len(self.ledger), "type": effect.type.value, "amount": effect.amount,
              "balance_after": effect.balance_after, "description": description,
              "reference": reference, "week_type": week_type, "created_at": datetime.now(UTC)}  # fmt: skip
        return after, tx

    def emit(self, type_: str, data: dict[str, Any], *, subject: str | None = None) -> None:
        self.events.append((type_, data))

    def balance_changed(self, account: Account, tx: Row) -> None:
        self.emit("alluse.account.balance_changed", {"balance": str(account.balance)})

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        yield
