"""The rows a unit of work buffers, sent with one pipelined statement per table when the batch
ends (or before a command's SQL of its own): a refused command's buffer is simply dropped."""

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import Account
from services.account.domain.positions import Holding
from services.account.state.store import accounts, ledger
from services.account.state.store import positions as ps

Rows = list[tuple[Any, ...]]


def _rows() -> Rows:
    return []


@dataclass
class Writes:
    """New portfolios, accounts, ledger rows and balances; and of docs/rules.md section 11: broker
    references claimed, position moves and positions after them, value points and value states,
    violations and each account's violation count after them."""

    portfolios: Rows = field(default_factory=_rows)
    accounts: Rows = field(default_factory=_rows)
    ledger: Rows = field(default_factory=_rows)
    balances: dict[UUID, Account] = field(default_factory=dict)
    refs: Rows = field(default_factory=_rows)
    moves: Rows = field(default_factory=_rows)
    positions: dict[tuple[UUID, str], tuple[Holding, datetime]] = field(default_factory=dict)
    values: Rows = field(default_factory=_rows)
    valuations: dict[UUID, tuple[Any, ...]] = field(default_factory=dict)
    violations: Rows = field(default_factory=_rows)
    violation_counts: dict[UUID, int] = field(default_factory=dict)

    def add(self, other: "Writes") -> None:
        """`other`'s rows after these (a later state of the same row wins)."""
        self.portfolios += other.portfolios
        self.accounts += other.accounts
        self.ledger += other.ledger
        self.balances.update(other.balances)
        self.refs += other.refs
        self.moves += other.moves
        self.positions.update(other.positions)
        self.values += other.values
        self.valuations.update(other.valuations)
        self.violations += other.violations
        self.violation_counts.update(other.violation_counts)

    async def send(self, conn: asyncpg.Connection) -> None:
        """In the order the foreign keys need: accounts, then the ledger, then what names it."""
        if self.portfolios:
            await accounts.insert_portfolios(conn, rows=self.portfolios)
        if self.accounts:
            await accounts.insert_accounts(conn, rows=self.accounts)
        if self.ledger:
            await ledger.insert_ledger(conn, rows=self.ledger)
        if self.balances:
            await accounts.save_balances(conn, accounts=list(self.balances.values()))
        if self.refs:
            await ledger.insert_refs(conn, rows=self.refs)
        if self.moves:
            await ps.insert_moves(conn, rows=self.moves)
        if self.positions:
            await ps.save_positions(conn, held=self.positions)
        if self.values:
            await ps.insert_values(conn, rows=self.values)
        if self.valuations:
            await ps.save_valuations(conn, rows=list(self.valuations.values()))
        if self.violations:
            await ledger.insert_violations(conn, rows=self.violations)
        if self.violation_counts:
            await ledger.save_violation_counts(conn, counts=self.violation_counts)
        for f in fields(self):  # emptied: what was sent is the database's now
            setattr(self, f.name, type(getattr(self, f.name))())
