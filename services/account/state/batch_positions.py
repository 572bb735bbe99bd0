"""docs/rules.md section 11 as the batch sees it, for the accounts it has locked: their positions
with the latest quote of each, the drawdown's state, violation counts, and the broker references the
batch names. Read once per batch (one query for the accounts, one for the references), kept
current by the commands in memory and written through the unit's buffers, so a fill costs no
round trip of its own. A refused command's changes are undone with its buffer; SQL of a
command's own (a fork, a reversal, a quote) makes the next reader load afresh."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import TransactionType
from services.account.domain.marks import Marked, Quote, mark_all
from services.account.domain.positions import Holding, Move
from services.account.state.store import ledger
from services.account.state.store import positions as ps
from services.account.state.writes import Writes
from shared.contracts.envelope import CloudEvent
from shared.infra.stream.unit import Sql

T = TransactionType
FLOWS = frozenset({T.DEPOSIT, T.WITHDRAWAL, T.FORK_TRANSFER, T.MERGE_TRANSFER})
REFS = {"fill_id": "fill", "assignment_id": "assignment", "expiration_id": "expiration"}
Ref = tuple[str, str, str]  # (producer: the effect's verified writer, kind, reference)


@dataclass
class Valued:
    """An account's open positions by contract, its drawdown peak and state, the money moved
    in or out since the peak was brought up to date (through ledger id `through`), and its
    violation count."""

    holdings: dict[str, Holding]
    peak: Decimal
    breached: bool
    flows: Decimal
    through: int
    violations: int

    def booked(self, transaction_id: int, kind: str, amount: Decimal) -> None:
        self.through = max(self.through, transaction_id)
        if kind in FLOWS:
            self.flows += amount


class BatchPositions:
    def __init__(self, batch: Iterable[CloudEvent]) -> None:
        self.accounts: dict[UUID, Valued] = {}
        self.quotes: dict[str, Quote | None] = {}  # by contract; None: no quote yet
        self.refs: dict[Ref, str | None] = {}  # fingerprint applied with; None: not applied
        self.claimed_by: dict[Ref, tuple[str, str]] = {}  # (source, id) of the claiming entry
        self.named: set[UUID] = set()  # accounts of the batch's fills, assignments, expirations
        self.wanted: list[Ref] = []  # the references they carry
        for ev in batch:
            found = [(ev.writer, kind, str(ev.data[k])) for k, kind in REFS.items() if k in ev.data]
            if found and (account := _uuid(ev.data.get("account_id"))):
                self.named.add(account)
                self.wanted += found
        self.undo: dict[UUID, Valued | None] = {}  # of the command in hand
        self.claims: list[Ref] = []  # of the command in hand

    def begin(self) -> None:
        self.undo, self.claims = {}, []

    def rollback(self) -> None:
        for account_id, before in self.undo.items():
            if before is None:
                self.accounts.pop(account_id, None)
            else:
                self.accounts[account_id] = before
        for ref in self.claims:
            self.refs[ref] = None
            self.claimed_by.pop(ref, None)

    def forget(self) -> None:
        """SQL of a command's own may have moved positions or quotes: read them again."""
        self.accounts.clear()
        self.quotes.clear()

    async def start(self, conn: Sql, locked: Iterable[UUID]) -> None:
        """The batch's named accounts (those of them `locked`) and the references it carries,
        read together in one round trip once the batch holds its locks."""
        ids = [i for i in self.named if i in locked]
        if not ids and not self.wanted:
            return
        asked = list(dict.fromkeys(self.wanted))
        rows, found = await ps.valued_and_claimed(conn, account_ids=ids, refs=asked)
        self._loaded(rows, ())
        self._claimed(asked, found)

    async def load(self, conn: Sql, account_id: UUID, unsent: Iterable[tuple[Any, ...]]) -> None:
        """`account_id` and the batch's other named accounts not loaded yet; `unsent`: ledger
        rows buffered but not in the database, whose money flows count too."""
        ids = [account_id, *(i for i in self.named if i != account_id and i not in self.accounts)]
        self._loaded(await ps.valued(conn, account_ids=ids), unsent)

    def _loaded(self, rows: Iterable[asyncpg.Record], unsent: Iterable[tuple[Any, ...]]) -> None:
        loaded: dict[UUID, Valued] = {}
        for r in rows:
            v = loaded.get(r["account_id"])
            if v is None:
                v = loaded[r["account_id"]] = Valued(
                    {},
                    r["peak_value"],
                    r["drawdown_breached"],
                    r["flows"],
                    r["through"],
                    r["violations"],
                )
            if r["contract"] is not None:
                v.holdings[r["contract"]] = ps.holding_of(r)
                bid = r["bid"]
                self.quotes[r["contract"]] = (
                    None if bid is None else Quote(bid, r["ask"], r["last"])
                )
        for row in unsent:  # (id, account, type, amount, ...): see AccountUnit._ledger_row
            if row[1] in loaded:
                loaded[row[1]].booked(row[0], row[2], row[3])
        for found, v in loaded.items():
            self.undo.setdefault(found, None)
            self.accounts[found] = v

    def touch(self, account_id: UUID) -> Valued:
        """The account's state, to change: as it was before the command is kept for undo."""
        v = self.accounts[account_id]
        if account_id not in self.undo:
            self.undo[account_id] = replace(v, holdings=dict(v.holdings))
        return v

    async def marks(self, conn: Sql, account_id: UUID) -> list[Marked]:
        held = self.accounts[account_id].holdings
        if missing := [k for k in held if k not in self.quotes]:
            found = await ps.quotes(conn, symbols=missing)
            self.quotes.update({k: found.get(k) for k in missing})
        quotes = {k: q for k in held if (q := self.quotes[k]) is not None}
        return mark_all(held.values(), quotes)

    async def claim(
        self,
        conn: Sql,
        ref: Ref,
        fingerprint: str,
        account_id: UUID,
        out: Writes,
        entry: tuple[str, str],
    ) -> str:
        """'new' the first time a reference is seen, 'duplicate' or 'conflict' after.
        `entry`: (source, id) of the entry claiming it, kept with the claim."""
        if ref not in self.refs:
            asked = list(dict.fromkeys([ref, *(r for r in self.wanted if r not in self.refs)]))
            self._claimed(asked, await ledger.claimed_refs(conn, refs=asked))
        prior = self.refs[ref]
        if prior is None:
            self.refs[ref] = fingerprint
            self.claimed_by[ref] = entry
            self.claims.append(ref)
            out.refs.append((*ref, account_id, fingerprint, *entry))
            return "new"
        return "duplicate" if prior == fingerprint else "conflict"

    def _claimed(self, asked: list[Ref], found: ledger.Claims) -> None:
        for r in asked:
            fp, *by = found.get(r) or (None, "", "")
            self.refs[r] = fp
            if by[1]:
                self.claimed_by[r] = (by[0], by[1])

    def move(
        self,
        account_id: UUID,
        moves: list[Move],
        out: Writes,
        *,
        why: ps.Moved,
    ) -> None:
        """`why`: what each history row shares (transaction, cause, reference, command, time)."""
        held = self.touch(account_id).holdings
        for m in moves:
            out.moves.append(ps.move_row(account_id, m, why))
            out.positions[(account_id, m.contract.key)] = (m.after, why.at)
            if m.after.quantity:
                held[m.contract.key] = m.after
            else:
                held.pop(m.contract.key, None)

    def value(self, point: tuple[Any, ...], state: tuple[Any, ...], out: Writes) -> None:
        """`point`: (account, cash, positions value, broker value, flow, by quote, effective_at);
        `state`: (account, positions value, peak, drawdown %, breached), valued through the
        account's last ledger row."""
        account_id, at = point[0], point[-1]
        v = self.touch(account_id)
        out.values.append(point)
        out.valuations[account_id] = (*state, v.through, at)
        v.peak, v.breached, v.flows = state[2], state[4], Decimal(0)

    def violations(self, account_id: UUID, out: Writes, rows: list[tuple[Any, ...]]) -> int:
        v = self.touch(account_id)
        v.violations += len(rows)
        out.violations += rows
        out.violation_counts[account_id] = v.violations
        return v.violations


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
