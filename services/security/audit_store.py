"""The security service's SQL for its audit chain: the head, appending a record, reading it back."""

from datetime import datetime, timedelta
from typing import Any

from services.security.store import Conn, Row
from shared.infra.runtime.bulk import insert_rows

AUDIT_COLUMNS = "seq, event_id, occurred_at, source, action, actor, subject, details, cause, key_id"


async def audit_head(conn: Conn, *, lock: bool) -> Row:
    """The chain's last (seq, hash); FOR UPDATE serialises appenders until they commit."""
    sql = "SELECT seq, hash FROM audit_head" + (" FOR UPDATE" if lock else "")
    row = await conn.fetchrow(sql)
    assert row is not None, "migration 001 inserts the head row"
    return row


AUDIT_ROW = [
    ("seq", "bigint"),
    ("event_id", "text"),
    ("occurred_at", "timestamptz"),
    ("source", "text"),
    ("action", "text"),
    ("actor", "text"),
    ("subject", "text"),
    ("details", "text"),
    ("cause", "text"),
    ("key_id", "text"),
    ("prev_hash", "text"),
    ("hash", "text"),
]


async def append_audits(conn: Conn, *, links: list[tuple[dict[str, Any], str, str]]) -> None:
    """(record, prev_hash, hash) in chain order: one INSERT, then the head moved once."""
    rows = [
        (
            r["seq"],
            r["event_id"],
            datetime.fromisoformat(r["time"]),
            r["source"],
            r["action"],
            r["actor"],
            r["subject"],
            r["details"],
            r["cause"],
            r["key_id"],
            prev,
            hash_,
        )
        for r, prev, hash_ in links
    ]  # fmt: skip: one row's columns read as the table's
    await insert_rows(conn, "audit_records", AUDIT_ROW, rows)
    last, _, hash_ = links[-1]
    await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", last["seq"], hash_)


async def chained(
    conn: Conn, entries: list[dict[str, Any]], window: timedelta
) -> set[tuple[str, str]]:
    """Which of `entries`' (source, event_id) the chain holds already, from within `window`
    before the entry's time: the same record again (same time) always, a record with that id
    made longer ago than the window (the command applied again since) not."""
    rows = await conn.fetch(
        "SELECT k.source, k.event_id"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS k (source, event_id, at)"
        " WHERE EXISTS (SELECT FROM audit_records a WHERE a.event_id = k.event_id"
        " AND a.source = k.source AND a.occurred_at > k.at - $4::interval)",
        [e["source"] for e in entries],
        [e["event_id"] for e in entries],
        [datetime.fromisoformat(e["time"]) for e in entries],
        window,
    )
    return {(r["source"], r["event_id"]) for r in rows}


async def last_audit_unkeyed(conn: Conn) -> bool:
    return bool(
        await conn.fetchval("SELECT key_id IS NULL FROM audit_records ORDER BY seq DESC LIMIT 1")
    )


async def audit_rows(conn: Conn, *, after: int, limit: int) -> list[Row]:
    return await conn.fetch(
        f"SELECT {AUDIT_COLUMNS}, prev_hash, hash FROM audit_records WHERE seq > $1"
        " ORDER BY seq LIMIT $2",
        after,
        limit,
    )


async def query_audit(
    conn: Conn,
    *,
    actor: str | None,
    subject: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Row]:
    return await conn.fetch(
        f"SELECT {AUDIT_COLUMNS} FROM audit_records WHERE ($1::text IS NULL OR actor = $1)"
        " AND ($2::text IS NULL OR subject = $2) AND ($3::text IS NULL OR action = $3)"
        " AND ($4::timestamptz IS NULL OR occurred_at >= $4)"
        " AND ($5::timestamptz IS NULL OR occurred_at < $5) ORDER BY seq DESC LIMIT $6",
        actor,
        subject,
        action,
        since,
        until,
        limit,
    )
