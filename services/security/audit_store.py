"""The security service's SQL for its audit chain: the head, appending a record, reading it back."""

from datetime import datetime, timedelta
from typing import Any

from services.security.store import Conn, Row
from shared.infra.runtime.bulk import Statements

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


def append_audits(out: Statements, *, links: list[tuple[dict[str, Any], str, str]]) -> None:
    """(record, prev_hash, hash) in chain order: their rows and the head moved once, added to
    `out` (one statement with whatever else it holds: neither part reads what another writes)."""
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
    out.insert("audit_records", AUDIT_ROW, rows)
    last, _, hash_ = links[-1]
    seq, head = out.param(last["seq"], "bigint"), out.param(hash_, "text")
    out.add(f"UPDATE audit_head SET seq = {seq}, hash = {head}")


# The entries (source, event_id, time) the chain holds from within the window ($4) before their
# time, by their place in the arrays: the same record again (same time) always, a record with
# that id made longer ago than the window (the command applied again since) not.
_CHAINED = (
    "SELECT k.n FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY"
    " AS k (source, event_id, at, n)"
    " WHERE EXISTS (SELECT FROM audit_records a WHERE a.event_id = k.event_id"
    " AND a.source = k.source AND a.occurred_at > k.at - $4::interval)"
)


def _keys(entries: list[dict[str, Any]], window: timedelta) -> list[Any]:
    return [
        [e["source"] for e in entries],
        [e["event_id"] for e in entries],
        [datetime.fromisoformat(e["time"]) for e in entries],
        window,
    ]


def _held(entries: list[dict[str, Any]], places: list[int]) -> set[tuple[str, str]]:
    return {(entries[n - 1]["source"], entries[n - 1]["event_id"]) for n in places}


async def chained(
    conn: Conn, entries: list[dict[str, Any]], window: timedelta
) -> set[tuple[str, str]]:
    """Which of `entries`' (source, event_id) the chain holds already, from within `window`
    before the entry's time (_CHAINED)."""
    rows = await conn.fetch(_CHAINED, *_keys(entries, window))
    return _held(entries, [r["n"] for r in rows])


async def head_and_chained(
    conn: Conn, entries: list[dict[str, Any]], window: timedelta
) -> tuple[Row, set[tuple[str, str]]]:
    """The chain's head, locked as `audit_head(lock=True)` locks it, and `chained(entries)`
    as of that lock: in one statement when the lock was free. A statement that waited for the
    lock sees the head as its holder left it, but reads the records as they were when it began,
    without those the holder added: then (its snapshot's last seq short of the head's) the
    records are read again, by a statement that begins under the lock."""
    row = await conn.fetchrow(
        "SELECT h.seq, h.hash, (SELECT coalesce(max(seq), 0) FROM audit_records) AS seen,"
        f" ARRAY({_CHAINED}) AS held FROM audit_head h FOR UPDATE OF h",
        *_keys(entries, window),
    )
    assert row is not None, "migration 001 inserts the head row"
    if row["seen"] != row["seq"]:
        return row, await chained(conn, entries, window)
    return row, _held(entries, row["held"])


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
