"""The rows a unit of work buffers, sent when the batch ends (with its inbox and outbox rows) or
before a command's SQL of its own: a refused command's buffer is simply dropped. They go as one
statement, a part per table (shared/infra/runtime/bulk.py), unless an account the buffer
creates also has figures to save: its UPDATE would not see the row its sibling INSERT adds, so
then each goes on its own, in the order the foreign keys need."""

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import Account
from services.account.domain.positions import Holding
from services.account.state.store import accounts, ledger
from services.account.state.store import positions as ps
from shared.infra.runtime.bulk import Statements

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
        out = Statements()
        self.write(out)
        await out.send(conn)

    def write(self, out: Statements) -> None:
        """Added to `out`, in the order the foreign keys need: accounts, then the ledger, then
        what names it; then emptied (what `out` sends is the database's)."""
        created = {row[0] for row in self.accounts}
        saved = self.balances.keys() | self.valuations.keys() | self.violation_counts.keys()
        out.apart = not created.isdisjoint(saved)
        accounts.insert_portfolios(out, rows=self.portfolios)
        accounts.insert_accounts(out, rows=self.accounts)
        ledger.insert_ledger(out, rows=self.ledger)
        accounts.save_accounts(
            out,
            balances=self.balances,
            valuations=self.valuations,
            violations=self.violation_counts,
        )
        ledger.insert_refs(out, rows=self.refs)
        ps.insert_moves(out, rows=self.moves)
        ps.save_positions(out, held=self.positions)
        ps.insert_values(out, rows=self.values)
        ledger.insert_violations(out, rows=self.violations)
        out.apart = False
        for f in fields(self):
            setattr(self, f.name, type(getattr(self, f.name))())
