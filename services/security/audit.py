"""The audit chain: append (serialised on the head row), consume AUDIT, verify, query.

The HMAC keys are the process's (`use_keys`, called by the service and its administration
at start), so every writer of the chain keys it the same way without carrying them around.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.security import audit_store, store
from services.security.chain import Broken, ChainCheck, Head, canonical, link_hash
from services.security.crypto import AUDIT_HOW, AuditKeys, KeyConfigError
from shared.contracts.envelope import CloudEvent
from shared.contracts.messages import AUDIT_RECORDED
from shared.infra.audit import scrub
from shared.infra.messaging import Emit, Rejected
from shared.infra.unit import SqlUnit

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


async def append(
    conn: store.Conn,
    *,
    action: str,
    actor: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    source: str = SOURCE,
    event_id: str | None = None,
    time: datetime | None = None,
    cause: str | None = None,
) -> int:
    """Add one record to the chain inside the caller's transaction; returns its seq."""
    ring = keys()
    head = await audit_store.audit_head(conn, lock=True)
    record = {
        "seq": head["seq"] + 1,
        "event_id": event_id or str(uuid.uuid4()),
        "time": (time or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "source": source[:TEXT_MAX],
        "action": action[:TEXT_MAX],
        "actor": actor[:TEXT_MAX],
        "subject": None if subject is None else subject[:TEXT_MAX],
        "details": canonical(scrub(details or {})),
        "cause": cause,
        "key_id": ring.primary,
    }
    link = link_hash(head["hash"], record, ring.keys[ring.primary])
    await audit_store.append_audit(conn, record=record, prev_hash=head["hash"], hash_=link)
    return int(record["seq"])


async def seal(pool: asyncpg.Pool) -> None:
    """Key a chain that ends in unkeyed records (written before keys), so they are pinned."""
    async with pool.acquire() as conn, conn.transaction():
        if await audit_store.last_audit_unkeyed(conn):
            await append(conn, action="security.audit.keyed", actor="security")


async def on_audit_event(unit: SqlUnit, ev: CloudEvent) -> list[Emit]:
    """Pipeline handler for AUDIT: the inbox makes each event one record, exactly once."""
    if ev.type != AUDIT_RECORDED:
        raise Rejected("unknown_type", f"expected {AUDIT_RECORDED}, got {ev.type[:100]}")
    data = ev.data
    if not isinstance(data.get("action"), str) or not isinstance(data.get("actor"), str):
        raise Rejected("invalid_audit_record", "data needs string 'action' and 'actor'")
    details = data.get("details") or {}
    if not isinstance(details, dict):
        raise Rejected("invalid_audit_record", "'details' must be an object")
    subject = data.get("subject")
    await append(
        await unit.enter(),
        action=data["action"],
        actor=data["actor"],
        subject=str(subject) if subject is not None else None,
        details=details,
        source=ev.source,
        event_id=ev.id,
        time=ev.time,
        cause=ev.causationid,
    )
    return []


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
