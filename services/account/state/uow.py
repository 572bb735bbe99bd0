"""The account service's unit of work: the only door handlers have to state.

One unit serves one batch, in one transaction. The accounts the batch names are locked in one
query (in id order, so replicas cannot deadlock), which then reserves the batch's ledger ids:
drawn after the locks, so an account's rows are in id order as they were committed.
New portfolios, accounts, ledger rows and balances, and docs/rules.md section 11's rows (broker
references claimed, position moves, value points, violations) are buffered per command and sent
in one statement with the batch's inbox and outbox rows when the batch ends (writes.py): a
refused command's buffer is dropped, and the accounts and positions it changed are as before.
Positions, quotes and value states are read once per batch and kept current in memory
(batch_positions.py), so a fill costs no round trip of its own.
A command that needs SQL of its own (`db`) first sends what the batch buffered so far, then
runs in a SAVEPOINT, which a rejection rolls back; what it may have changed is read afresh."""

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from services.account.domain import (
    Account,
    BalanceChange,
    TransactionType,
    UnknownAccount,
    apply_change,
)
from services.account.domain.marks import Marked
from services.account.domain.money import ZERO
from services.account.domain.positions import Move
from services.account.handlers import events
from services.account.state import repositories
from services.account.state.batch_positions import BatchPositions, Ref, Valued
from services.account.state.port import AccountRow, LedgerRow, PortfolioRow, Unit
from services.account.state.store import accounts, ledger
from services.account.state.store import positions as ps
from services.account.state.writes import Writes
from shared.contracts import lifecycle
from shared.contracts.envelope import CloudEvent, new_event
from shared.contracts.streams import ACCOUNT_EVENTS, Streams
from shared.infra.runtime.bulk import Statements
from shared.infra.stream import inbox
from shared.infra.stream.messaging import AlreadyApplied
from shared.infra.stream.unit import SqlUnit

_NS = uuid.UUID("6f1c5b8e-2d1e-4c7a-9b57-0a4f3c2e9d10")  # of the events' ids (uuid5)
_NS_BYTES = _NS.bytes
SPARE_IDS = 16  # ledger ids a command with SQL of its own may book (a merge: one per account)


class AccountUnit(SqlUnit):
    def __init__(
        self, conn: asyncpg.Connection, streams: Streams, batch: list[CloudEvent] | None = None
    ) -> None:
        super().__init__(conn)
        self.streams = streams
        self.cached: dict[UUID, tuple[Account, AccountRow]] = {}  # locked by this transaction
        self.done = Writes()  # of the batch's commands that went through
        self.mine = Writes()  # of the command in hand
        self.undo: dict[UUID, tuple[Account, AccountRow] | None] = {}  # cache entries it changed
        self.ids: list[int] = []  # reserved ledger ids, popped from the end
        self.at = datetime.now(UTC)
        self.dated: datetime | None = None  # business time last set on the connection
        self.went_direct = False  # the command in hand ran SQL of its own
        self.stale = False  # ... since section 11's state was last read
        self.positions = BatchPositions(batch or [])
        # Statements of their own, in the command's savepoint (repositories.py).
        self.accounts = repositories.Accounts(self.db)
        self.ledger = repositories.Ledger(self.db)
        self.growth = repositories.Growth(self.db)
        self.position_store = repositories.PositionStore(self.db)

    @classmethod
    async def start(
        cls, conn: asyncpg.Connection, batch: list[CloudEvent], streams: Streams
    ) -> "AccountUnit":
        unit, _ = await cls.opened(conn, [], batch, streams)
        return unit

    @classmethod
    async def opened(
        cls,
        conn: asyncpg.Connection,
        seen: list[CloudEvent],
        batch: list[CloudEvent],
        streams: Streams,
    ) -> tuple["AccountUnit", inbox.Known]:
        """The unit of `batch`, its accounts locked and its ledger ids reserved, with what the
        inbox knows of `seen`, in one round trip; then, for a batch of fills, assignments or
        expirations, their accounts' positions and value states and the references they
        claim, in a second (read with the locks held, see accounts.lock_with_ids)."""
        unit = cls(conn, streams, batch)
        named = {_uuid(ev.data.get("account_id") or ev.subject) for ev in batch}
        # Enough ledger ids for the busiest command (an initialization books three rows).
        locked, ids, known = await accounts.lock_with_ids(
            conn, account_ids=[i for i in named if i], ids=3 * len(batch) + 8, seen=seen
        )
        for account, row in locked:
            unit.cached[account.id] = (account, row)
        unit.ids = list(reversed(ids))
        await unit.positions.start(conn, unit.cached)
        return unit, known

    @contextlib.asynccontextmanager
    async def command(self, ev: CloudEvent) -> AsyncIterator[None]:
        # Rows are dated in business time: the message's own, at most now.
        self.at = min(ev.time, datetime.now(UTC))
        self.mine, self.undo = Writes(), {}
        self.positions.begin()
        try:
            async with super().command(ev):
                yield
                if self.savepoint is not None:
                    await self.mine.send(self.conn)  # still inside the savepoint
        except BaseException:
            for account_id, before in self.undo.items():
                if before is None:
                    self.cached.pop(account_id, None)
                else:
                    self.cached[account_id] = before
            self.positions.rollback()
            raise
        finally:
            if self.went_direct:  # its SQL may have changed accounts: read them afresh
                self.cached.clear()
                self.positions.forget()
            self.went_direct = self.stale = False
        self.done.add(self.mine)

    @property
    def command_id(self) -> str:
        return self.cause.id if self.cause is not None else ""

    async def enter(self) -> asyncpg.Connection:
        """The connection in the command's savepoint, after everything buffered so far."""
        conn = await super().enter()
        self.stale = True
        await self.mine.send(conn)
        if len(self.ids) < SPARE_IDS:  # a fork or a merge books several rows
            self.ids[:0] = reversed(await ledger.reserve_ledger_ids(conn, count=SPARE_IDS))
        return conn

    async def before_savepoint(self) -> None:
        """The batch's buffered writes land first (outside the savepoint: they are kept)."""
        self.went_direct = True
        await self.done.send(self.conn)
        if self.dated != self.at:
            await ledger.set_effective_time(self.conn, at=self.at)
            self.dated = self.at

    async def flush(self, out: Statements) -> None:
        self.done.write(out)

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        """A step that may fail without failing the command (a nested savepoint)."""
        conn = await self.enter()  # what the command buffered so far is sent: kept either way
        mark = len(self.events)
        try:
            async with conn.transaction():
                yield
                await self.mine.send(conn)
        except BaseException:
            del self.events[mark:]
            self.mine = Writes()  # the step's own rows, not yet sent
            self.cached.clear()  # the database, rolled back, is the truth again
            self.positions.forget()
            raise

    # Accounts

    async def account(self, account_id: UUID) -> tuple[Account, AccountRow]:
        """The account and its row, locked until the batch commits; unknown ones are refused.
        A lock taken now may have waited for another batch that booked rows meanwhile: the
        unused ledger ids are replaced by ones drawn after it (ids/lock_with_ids)."""
        if account_id not in self.cached:
            found, ids, _ = await accounts.lock_with_ids(
                self.conn, account_ids=[account_id], ids=max(len(self.ids), SPARE_IDS)
            )
            self.ids = list(reversed(ids))
            if not found:
                raise UnknownAccount(f"no account {account_id}", subject=str(account_id))
            self.cached[account_id] = found[0]
        return self.cached[account_id]

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
        """A new portfolio: a root, or a child of `parent` (a fork's) in the parent's tree."""
        tree = (
            (None, None, 0)
            if parent is None
            else (parent.id, parent.root_id, parent.generation + 1)
        )
        values = accounts.portfolio_values(
            at=self.at,
            tree=tree,
            portfolio_id=portfolio_id,
            name=name,
            template=template,
            strategy=strategy,
            risk=risk,
        )
        self.mine.portfolios.append(values)

    def add_account(
        self, account: Account, *, name: str, parent_id: UUID | None = None
    ) -> AccountRow:
        values, row = accounts.account_values(account, name=name, at=self.at, parent_id=parent_id)
        self.mine.accounts.append(values)
        self._keep(account.id, (account, row))
        if account.balance > 0:
            self._ledger_row(
                account.id,
                tx_type=TransactionType.DEPOSIT.value,
                amount=account.balance,
                balance_after=account.balance,
                description="initial funding",
                reference=None,
                week_type=None,
            )
        return row

    # Ledger

    def book(
        self,
        effect: BalanceChange,
        *,
        description: str,
        reference: str | None = None,
        week_type: str | None = None,
    ) -> tuple[Account, LedgerRow]:
        """Buffer one balance change; returns the account after it and its ledger row."""
        account, row = self.cached[effect.account_id]
        tx = self._ledger_row(
            account.id,
            tx_type=effect.type.value,
            amount=effect.amount,
            balance_after=effect.balance_after,
            description=description,
            reference=reference,
            week_type=week_type,
        )
        after = apply_change(account, effect)
        self._keep(account.id, (after, row))
        self.mine.balances[account.id] = after
        return after, tx

    # Positions and value (section 11): the batch's view, see batch_positions.py

    async def valued(self, account_id: UUID) -> Valued:
        """The account's positions and value state (it must be locked: `account()` first)."""
        if self.stale:  # SQL of the command's own ran since they were read
            self.positions.forget()
        if account_id not in self.positions.accounts:
            # After SQL of its own, the command's buffer is sent first (in its savepoint).
            conn = self.conn if self.savepoint is None else await self.enter()
            await self.positions.load(conn, account_id, [*self.done.ledger, *self.mine.ledger])
        self.stale = False
        return self.positions.accounts[account_id]

    async def marks(self, account_id: UUID) -> list[Marked]:
        """The account's open positions at their latest quotes."""
        await self.valued(account_id)
        return await self.positions.marks(self.conn, account_id)

    async def claim(self, ref: tuple[str, str], *, fingerprint: str, account_id: UUID) -> str:
        """A broker reference (kind, id: a fill, assignment, expiration) applied at most once
        per producing engine (the effect's verified writer): 'new' the first time, then
        'duplicate' (same figures) or 'conflict'. A duplicate claimed by another entry (the
        same fill re-sent under a new entry id) raises AlreadyApplied, naming that entry: its
        writer hears `duplicate` of it (docs/lanes.md), not an `applied` with no events."""
        assert self.cause is not None
        claim: Ref = (self.cause.writer, *ref)
        entry = (self.cause.source, self.cause.id)
        found = await self.positions.claim(
            self.conn, claim, fingerprint, account_id, self.mine, entry
        )
        by = self.positions.claimed_by.get(claim)
        if found == "duplicate" and by is not None and by != entry:
            raise AlreadyApplied(by)
        return found

    async def move(
        self,
        account_id: UUID,
        moves: list[Move],
        *,
        transaction_id: int | None,
        cause: str,
        reference: str | None,
    ) -> None:
        """Positions moved, each with its history row."""
        await self.valued(account_id)
        why = ps.Moved(transaction_id, cause, reference, self.command_id, self.at)
        self.positions.move(account_id, moves, self.mine, why=why)

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
        flow: Decimal = ZERO,
        by_quote: bool = False,
    ) -> None:
        """A value point (`flow`: positions' value carried in or out; `by_quote`: caused by a
        quote), and the drawdown's state after it; `valued()` read the state before."""
        point = (account_id, cash, positions, broker, flow, by_quote, self.at)
        state = (account_id, positions, peak, drawdown_pct, breached)
        self.positions.value(point, state, self.mine)

    async def violations(
        self,
        account_id: UUID,
        *,
        ref: str | None,
        details: list[str],
        week_type: str | None,
        source: str,
    ) -> int:
        """Recorded; returns the account's violation count after them."""
        await self.valued(account_id)
        rows = [(account_id, ref, d, week_type, source) for d in details]
        return self.positions.violations(account_id, self.mine, rows)

    # Events

    def emit(self, event: lifecycle.Payload, *, subject: str | None = None) -> None:
        """An event of the command in hand, built as its contract model; its id derives from
        the command's, so it is stable."""
        type_, data = lifecycle.wire_data(event)
        assert self.cause is not None
        cause = self.cause
        # From the whole idempotency key: two writers' entries with one (source, id) never
        # cause events with the same id.
        key = f"{cause.writer}|{cause.source}|{cause.id}|{len(self.events)}"
        fields = new_event(
            type_, events.SOURCE, data, subject=subject, cause=cause, event_id=event_id(key)
        )
        self.publish(self.streams.key(ACCOUNT_EVENTS), fields)

    def balance_changed(self, account: Account, tx: LedgerRow) -> None:
        self.emit(events.balance_changed(account, tx), subject=str(account.id))

    def _keep(self, account_id: UUID, entry: tuple[Account, AccountRow]) -> None:
        self.undo.setdefault(account_id, self.cached.get(account_id))
        self.cached[account_id] = entry

    def _ledger_row(
        self,
        account_id: UUID,
        *,
        tx_type: str,
        amount: Any,
        balance_after: Any,
        description: str,
        reference: str | None,
        week_type: str | None,
    ) -> LedgerRow:
        if not self.ids:  # cannot happen within the reservation; the batch would retry alone
            raise RuntimeError("the batch ran out of reserved ledger ids")
        command_id = self.command_id
        if account_id in self.positions.accounts:
            self.positions.touch(account_id).booked(self.ids[-1], tx_type, amount)
        tx = LedgerRow(
            self.ids.pop(),
            tx_type,
            amount,
            balance_after,
            description,
            reference,
            week_type,
            self.at,
        )
        self.mine.ledger.append(
            (
                tx.id,
                account_id,
                tx_type,
                amount,
                balance_after,
                description,
                reference,
                week_type,
                command_id,
                self.at,
            )
        )
        return tx


if TYPE_CHECKING:  # mypy holds the unit to the port its handlers are typed against

    def _implements_the_port(unit: AccountUnit) -> Unit:
        return unit


def event_id(key: str) -> str:
    """str(uuid.uuid5(_NS, key)), made from the digest's bytes: a third of the cost of building
    and formatting a UUID object, for each event the service emits."""
    digest = bytearray(hashlib.sha1(_NS_BYTES + key.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
