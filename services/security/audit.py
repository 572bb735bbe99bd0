"""The audit chain: append (serialised on the head row), consume AUDIT, verify, query.

The HMAC keys are the process's (`use_keys`, called by the service and its administration
at start), so every writer of the chain keys it the same way without carrying them around.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.security import audit_store, store
from services.security.chain import Broken, ChainCheck, Head, canonical, link_hash
from services.security.crypto import AUDIT_HOW, AuditKeys, KeyConfigError
from shared.contracts.answers import AuditBatch
from shared.contracts.envelope import CloudEvent, explain
from shared.contracts.messages import AUDIT_BATCH, AUDIT_RECORDED, AUDIT_TYPES
from shared.infra.runtime.bulk import Statements
from shared.infra.stream.messaging import Emit, Rejected
from shared.infra.stream.unit import SqlUnit
from shared.infra.trust.audit import scrub

SOURCE = "alluse/security"
TEXT_MAX = 500
_keys: AuditKeys | None = None


def use_keys(keys: AuditKeys) -> None:
    global _keys
    _keys = keys


def keys() -> AuditKeys:
    if _keys is None:
        raise KeyConfigError(f"ALLUSE_AUDIT_KEYS is not set: {AUDIT_HOW}")
    return _keys


def entry(
    *,
    action: str,
    actor: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    source: str = SOURCE,
    event_id: str | None = None,
    time: datetime | None = None,
    cause: str | None = None,
) -> dict[str, Any]:
    """One record's fields, before the chain gives it a seq and a key."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "time": (time or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "source": source[:TEXT_MAX],
        "action": action[:TEXT_MAX],
        "actor": actor[:TEXT_MAX],
        "subject": None if subject is None else subject[:TEXT_MAX],
        "details": canonical(scrub(details or {})),
        "cause": cause,
    }


async def chain(
    conn: store.Conn,
    entries: list[dict[str, Any]],
    *,
    once_within: timedelta | None = None,
    out: Statements | None = None,
) -> int:
    """Link `entries` after the chain's head, in order, inside the caller's transaction: the
    head read (locked) once, its rows and the head moved in one statement. Returns the last
    seq. With `out`, the rows and the head are added to it, for the caller to send with its
    own writes in the same transaction (the head stays locked until it ends).

    `once_within` (the deduplication window): an entry whose (source, event_id) the chain
    holds from within that long before the entry's time, or that repeats an earlier one of
    `entries`, is left out (checked under the head's lock, so two appenders never both add
    it; read with the head: audit_store.head_and_chained). Beyond the window a writer's inbox
    has forgotten the command's key and may apply it again: that application's record, made
    then, is chained again."""
    ring = keys()
    if once_within is None:
        head = await audit_store.audit_head(conn, lock=True)
    else:
        head, held = await audit_store.head_and_chained(conn, entries, once_within)
        entries = fresh(entries, held)
    seq, prev = int(head["seq"]), str(head["hash"])
    if not entries:
        return seq
    links = []
    for fields in entries:
        seq += 1
        record = {"seq": seq, **fields, "key_id": ring.primary}
        link = link_hash(prev, record, ring.keys[ring.primary])
        links.append((record, prev, link))
        prev = link
    writes = Statements() if out is None else out
    audit_store.append_audits(writes, links=links)
    if out is None:
        await writes.send(conn)
    return seq


def fresh(entries: list[dict[str, Any]], held: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """`entries` less those whose (source, event_id) is `held` or came earlier in the list."""
    seen = set(held)
    kept = []
    for e in entries:
        key = (e["source"], e["event_id"])
        if key not in seen:
            seen.add(key)
            kept.append(e)
    return kept


async def append(conn: store.Conn, **fields: Any) -> int:
    """Add one record (`entry`'s arguments) to the chain in the caller's transaction; its seq."""
    return await chain(conn, [entry(**fields)])


class AuditUnit(SqlUnit):
    """The audit consumer's unit of work: each message's records are checked and kept with it,
    and the batch's records are chained at flush, in the order their messages were read, each
    (source, id) once within the deduplication window `window`: a record comes again in a
    re-delivered batch, in another batch that overlaps it, or alone and in a batch."""

    def __init__(self, conn: asyncpg.Connection, window: timedelta) -> None:
        super().__init__(conn)
        self.window = window
        self.kept: list[dict[str, Any]] = []  # of the messages that went through
        self.mine: list[dict[str, Any]] = []  # of the message in hand

    @classmethod
    def within(
        cls, window: timedelta
    ) -> Callable[[asyncpg.Connection, list[CloudEvent]], Awaitable["AuditUnit"]]:
        """The pipeline's `unit`: one AuditUnit per batch, deduplicating within `window`."""

        async def open(conn: asyncpg.Connection, events: list[CloudEvent]) -> "AuditUnit":
            return cls(conn, window)

        return open

    @contextlib.asynccontextmanager
    async def command(self, ev: CloudEvent) -> AsyncIterator[None]:
        self.mine = []
        async with super().command(ev):
            yield
        self.kept += self.mine

    async def flush(self, out: Statements) -> None:
        if self.kept:  # sent with the batch's inbox rows, in one statement
            await chain(self.conn, self.kept, once_within=self.window, out=out)
            self.kept = []


async def seal(pool: asyncpg.Pool) -> None:
    """Key a chain that ends in unkeyed records (written before keys), so they are pinned."""
    async with pool.acquire() as conn, conn.transaction():
        if await audit_store.last_audit_unkeyed(conn):
            await append(conn, action="security.audit.keyed", actor="security")


async def on_audit_event(unit: AuditUnit, ev: CloudEvent) -> list[Emit]:
    """Pipeline handler for AUDIT (with `unit=AuditUnit.within(window)`): one record, or a
    batch of them (each its own record, under its own id); the unit chains the batch's records
    together, each (source, id) once within the window."""
    if ev.type == AUDIT_BATCH:
        unit.mine.extend(batch_entries(ev))
    elif ev.type == AUDIT_RECORDED:
        unit.mine.append(record_entry(ev))
    else:
        kinds = ", ".join(AUDIT_TYPES)
        raise Rejected("unknown_type", f"expected one of {kinds}, got {ev.type[:100]}")
    return []


def record_entry(ev: CloudEvent) -> dict[str, Any]:
    """The record of an `alluse.audit.recorded`, or invalid_audit_record."""
    data = ev.data
    if not isinstance(data.get("action"), str) or not isinstance(data.get("actor"), str):
        raise Rejected("invalid_audit_record", "data needs string 'action' and 'actor'")
    details = data.get("details") or {}
    if not isinstance(details, dict):
        raise Rejected("invalid_audit_record", "'details' must be an object")
    subject = data.get("subject")
    return entry(
        action=data["action"],
        actor=data["actor"],
        subject=str(subject) if subject is not None else None,
        details=details,
        source=ev.source,
        event_id=ev.id,
        time=ev.time,
        cause=ev.causationid,
    )


def batch_entries(ev: CloudEvent) -> list[dict[str, Any]]:
    """The records of an `alluse.audit.batch`, each under its own id and time, or the whole
    batch refused (invalid_audit_record) with every problem named."""
    try:
        batch = AuditBatch.model_validate(ev.data)
    except ValidationError as exc:
        raise Rejected("invalid_audit_record", explain(exc)[:1000]) from None
    return [
        entry(
            action=r.action,
            actor=r.actor,
            subject=r.subject,
            details=r.details,
            source=ev.source,
            event_id=r.id,
            time=r.time,
            cause=r.causationid,
        )
        for r in batch.records
    ]


def record_of(row: asyncpg.Record) -> dict[str, Any]:
    key = {} if row["key_id"] is None else {"key_id": row["key_id"]}
    return key | {
        "seq": row["seq"],
        "event_id": row["event_id"],
        "time": row["occurred_at"].astimezone(UTC).isoformat(),
        "source": row["source"],
        "action": row["action"],
        "actor": row["actor"],
        "subject": row["subject"],
        "details": row["details"],
        "cause": row["cause"],
    }


async def verify(
    pool: asyncpg.Pool, heads: list[Head] | None = None, *, batch: int = 5000
) -> tuple[int, Broken | None]:
    """(records checked, the first broken link or None), also against published heads."""
    check, after = ChainCheck(keys().keys, heads or []), 0
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        head = await audit_store.audit_head(conn, lock=False)
        while rows := await audit_store.audit_rows(conn, after=after, limit=batch):
            for row in rows:
                check.feed(record_of(row), row["prev_hash"], row["hash"])
            after = rows[-1]["seq"]
        return check.seq, check.finish(head["seq"], head["hash"])
