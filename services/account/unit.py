"""One batch's unit of work: accounts locked together, ledger writes buffered and sent together.

A batch of commands is one transaction. Instead of a round trip per statement per command,
the accounts the batch names are locked in one query (in id order, so replicas cannot
deadlock), and new portfolios, accounts, ledger rows and balances are written with one
pipelined statement each when the batch ends, or before any other SQL a handler needs
(`sql()`), so the database never sees a stale account.
"""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.account import store
from services.account.domain import Account, BalanceChange, apply_change
from shared.contracts.envelope import CloudEvent
from shared.infra.messaging import Rejected

Row = dict[str, Any]


class Batch:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.accounts: dict[UUID, tuple[Account, Row]] = {}
        self.portfolios: list[tuple[Any, ...]] = []
        self.created: list[tuple[Any, ...]] = []
        self.ledger: list[tuple[Any, ...]] = []
        self.dirty: set[UUID] = set()
        self.ids: list[int] = []
        self.at = datetime.now(UTC)
        self.applied_at: datetime | None = None  # business time last set on the connection
        self.command_id = ""

    @classmethod
    async def open(cls, conn: asyncpg.Connection, events: list[CloudEvent]) -> "Batch":
        batch = cls(conn)
        named = {_uuid(ev.data.get("account_id") or ev.subject) for ev in events}
        for account, row in await store.lock_accounts(conn, account_ids=[i for i in named if i]):
            batch.accounts[account.id] = (account, row)
        # Enough ledger ids for the busiest command (an initialization books three rows).
        batch.ids = list(reversed(await store.reserve_ledger_ids(conn, count=3 * len(events) + 8)))
        return batch

    def begin(self, ev: CloudEvent) -> None:
        """Rows the next handler writes are dated in business time: the message's own, at most now."""
        self.at, self.command_id = min(ev.time, datetime.now(UTC)), ev.id

    async def locked(self, account_id: UUID) -> tuple[Account, Row]:
        if account_id not in self.accounts:
            found = await store.lock_accounts(self.conn, account_ids=[account_id])
            if not found:
                raise Rejected(
                    "unknown_account", f"no account {account_id}", subject=str(account_id)
                )
            self.accounts[account_id] = found[0]
        return self.accounts[account_id]

    def forget(self) -> None:
        """After a handler's own SQL, accounts are read afresh (still locked by this transaction)."""
        self.accounts.clear()

    def new_portfolio(self, **columns: Any) -> None:
        self.portfolios.append(store.portfolio_values(at=self.at, **columns))

    def new_account(self, account: Account, *, name: str, parent_id: UUID | None = None) -> Row:
        values, row = store.account_values(account, name=name, at=self.at, parent_id=parent_id)
        self.created.append(values)
        self.accounts[account.id] = (account, row)
        if account.balance > 0:
            self._append(
                account.id,
                "deposit",
                account.balance,
                account.balance,
                "initial funding",
                None,
                None,
            )
        return row

    def change(self, effect: BalanceChange, *, description: str, reference: str | None = None,
               week_type: str | None = None) -> tuple[Account, Row]:  # fmt: skip
        """Book one balance change; returns the account after it and the ledger row."""
        account, row = self.accounts[effect.account_id]
        tx = self._append(
            account.id,
            effect.type.value,
            effect.amount,
            effect.balance_after,
            description,
            reference,
            week_type,
        )
        after = apply_change(account, effect)
        self.accounts[account.id] = (after, row)
        self.dirty.add(account.id)
        return after, tx

    async def sql(self) -> asyncpg.Connection:
        """The connection, for SQL of a handler's own: buffered writes land first."""
        await self.flush()
        if self.applied_at != self.at:
            await store.set_effective_time(self.conn, at=self.at)
            self.applied_at = self.at
        return self.conn

    async def flush(self) -> None:
        if self.portfolios:
            await store.insert_portfolios(self.conn, rows=self.portfolios)
        if self.created:
            await store.insert_accounts(self.conn, rows=self.created)
        if self.ledger:
            await store.insert_ledger(self.conn, rows=self.ledger)
        if self.dirty:
            await store.save_balances(self.conn, accounts=[self.accounts[i][0] for i in self.dirty])
        self.portfolios, self.created, self.ledger, self.dirty = [], [], [], set()

    def _append(self, account_id: UUID, tx_type: str, amount: Any, balance_after: Any,
                description: str, reference: str | None, week_type: str | None) -> Row:  # fmt: skip
        if not self.ids:  # cannot happen within the reservation; the batch would retry alone
            raise RuntimeError("the batch ran out of reserved ledger ids")
        tx = {
            "id": self.ids.pop(), "type": tx_type, "amount": amount, "balance_after": balance_after,
            "description": description, "reference": reference, "week_type": week_type,
            "created_at": self.at,
        }  # fmt: skip
        self.ledger.append((tx["id"], account_id, tx_type, amount, balance_after, description,
                            reference, week_type, self.command_id, self.at))  # fmt: skip
        return tx


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
