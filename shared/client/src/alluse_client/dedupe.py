"""Which entries a consumer has applied, by (source, id): the platform may deliver one twice.

A store answers `seen` and records `mark`. MemoryStore forgets on restart (tests, or handlers
that are idempotent anyway); SqliteStore keeps the keys in a file. For exactly-once effects
make the handler's own write and the mark one transaction: `SqliteStore.apply` does that for
a handler that writes to the same SQLite database.
"""

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")


class DedupeStore(Protocol):
    async def seen(self, source: str, id: str) -> bool:
        """True when the entry (source, id) has been applied already."""
        ...

    async def mark(self, source: str, id: str) -> None:
        """Record (source, id) as applied; marking twice is harmless."""
        ...


class MemoryStore:
    """Keys in a set of this process (lost on restart)."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()

    async def seen(self, source: str, id: str) -> bool:
        return (source, id) in self.keys

    async def mark(self, source: str, id: str) -> None:
        self.keys.add((source, id))


class SqliteStore:
    """Keys in a SQLite file (table `alluse_seen`), durable across restarts and crashes."""

    def __init__(self, path: str | Path) -> None:
        # One connection, used from worker threads one at a time (the lock), so the event
        # loop never waits on the disk.
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS alluse_seen (source TEXT NOT NULL, id TEXT NOT NULL,"
            " PRIMARY KEY (source, id))"
        )
        self.lock = threading.Lock()

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self.lock:
            return work(self.db)

    async def seen(self, source: str, id: str) -> bool:
        def look(db: sqlite3.Connection) -> bool:
            query = "SELECT 1 FROM alluse_seen WHERE source = ? AND id = ?"
            return db.execute(query, (source, id)).fetchone() is not None

        return await asyncio.to_thread(self._run, look)

    async def mark(self, source: str, id: str) -> None:
        await self.apply(source, id, lambda _: None)

    async def apply(self, source: str, id: str, work: Callable[[sqlite3.Connection], None]) -> bool:
        """Run `work` and mark (source, id) in one transaction; False (nothing run) when the
        entry was applied before. A crash leaves either both or neither."""

        def once(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                added = db.execute(
                    "INSERT OR IGNORE INTO alluse_seen (source, id) VALUES (?, ?)", (source, id)
                ).rowcount
                if added:
                    work(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return bool(added)

        return await asyncio.to_thread(self._run, once)

    def close(self) -> None:
        with self.lock:
            self.db.close()
