"""A unit of work per batch, a scope per command: what a refused command wrote is undone.

The pipeline runs a batch of commands in one transaction (one inbox and outbox write, one
commit). Each command runs inside `unit.command(ev)`. Its first statement opens a SAVEPOINT,
and a rejection or an error rolls back to it, so the rest of the batch commits without it.
Commands that never touch the database (or only buffer writes, see the account service's
unit) pay no savepoint.
"""

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol

import asyncpg
from asyncpg.transaction import Transaction

from shared.contracts.envelope import CloudEvent
from shared.infra.runtime.bulk import Statements
from shared.infra.stream.messaging import Emit


class Sql(Protocol):
    """What store functions need of a connection; a pooled Connection and a `Door` have it."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...
    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None: ...


class SqlUnit:
    """The unit of a service whose handlers write directly: `db` runs in the command's savepoint."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.db: Sql = Door(self)
        self.savepoint: Transaction | None = None
        self.cause: CloudEvent | None = None  # the message in hand
        self.events: list[Emit] = []  # what it causes, for the outbox

    @classmethod
    async def open(cls, conn: asyncpg.Connection, events: list[CloudEvent]) -> "SqlUnit":
        return cls(conn)

    async def enter(self) -> asyncpg.Connection:
        """The connection, inside the command's savepoint (opened on first use)."""
        if self.savepoint is None:
            await self.before_savepoint()
            self.savepoint = self.conn.transaction()
            await self.savepoint.start()
        return self.conn

    async def before_savepoint(self) -> None:
        """What must land outside the command's savepoint first (a subclass's buffered writes)."""

    def publish(self, stream: str, fields: dict[str, str]) -> None:
        """An event the message in hand causes, written to the outbox with its effects."""
        self.events.append((stream, fields))

    @contextlib.asynccontextmanager
    async def command(self, ev: CloudEvent) -> AsyncIterator[None]:
        self.cause, self.events = ev, []
        try:
            yield
        except BaseException:
            self.events = []
            if self.savepoint is not None:
                await self.savepoint.rollback()
            raise
        else:
            if self.savepoint is not None:
                await self.savepoint.commit()
        finally:
            self.savepoint = None

    async def flush(self, out: Statements) -> None:
        """Buffered writes of the batch: sent now, or added to `out`, which the pipeline sends
        with the batch's inbox and outbox rows (as one statement: see bulk.py)."""


class Door:
    """A connection that enters the command's savepoint before each statement."""

    def __init__(self, unit: SqlUnit) -> None:
        self.unit = unit

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await (await self.unit.enter()).fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await (await self.unit.enter()).fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await (await self.unit.enter()).fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await (await self.unit.enter()).execute(query, *args)

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None:
        await (await self.unit.enter()).executemany(command, args)
