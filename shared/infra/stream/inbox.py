"""The inbox and outbox rows of a batch, written in the batch's own transaction.

The inbox keeps each applied message's key (verified writer, source, id), its payload's
fingerprint and its outcome, so a redelivery is answered with the same events (same ids) and a
reused id with another payload is refused. The writer is the guard's (CloudEvent.key): another
principal's entry with the same (source, id) is another key, never a conflict with this one. The outbox holds what the relay publishes once the transaction commits.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from shared.contracts.envelope import CloudEvent
from shared.infra.runtime.bulk import Statements
from shared.infra.stream.messaging import Emit

Key = tuple[str, str, str]  # (writer, source, id)
Known = dict[Key, tuple[str, list[Emit], str]]  # key -> (fingerprint, outcome, its row's writer)


# The inbox rows answering keys given as three text arrays ($1 writers, $2 sources, $3 ids):
# the key's own row, and one written before keys named their writer (writer ''), which
# answers every writer of its (source, id) until the deduplication window forgets it, so an
# upgrade never applies an entry twice. Read through `known_from`; a statement that reads
# more beside them (services/integration/store.py) composes this one.
_KNOWN_SELECT = (  # (name, expression): the names and their order are one list
    ("writer", "k.writer"),
    ("source", "k.source"),
    ("id", "k.id"),
    ("fingerprint", "i.fingerprint"),
    ("outcome", "i.outcome"),
    ("applied_by", "i.writer"),
)
KNOWN_COLUMNS = tuple(name for name, _ in _KNOWN_SELECT)  # as KNOWN_ARRAY's records hold them
KNOWN = (
    "SELECT "  # noqa: S608 (constants only)
    + ", ".join(f"{expression} AS {name}" for name, expression in _KNOWN_SELECT)
    + " FROM inbox i"
    " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k (writer, source, id)"
    " ON i.source = k.source AND i.id = k.id AND i.writer IN (k.writer, '')"
)
# `KNOWN`'s rows as one array of records, for a statement that returns other rows beside them
# (services/account/state/store/accounts.py): read through `known_from_records`.
KNOWN_ARRAY = f"ARRAY(SELECT k FROM ({KNOWN}) AS k)"  # noqa: S608 (constants only)


def keys_of(events: Sequence[CloudEvent]) -> tuple[list[str], list[str], list[str]]:
    """The parameters of `KNOWN` for `events`."""
    return [ev.writer for ev in events], [ev.source for ev in events], [ev.id for ev in events]


def known_from(rows: Iterable[asyncpg.Record | Mapping[str, Any]]) -> Known:
    """`KNOWN`'s rows by key, in whatever order they come: where a key has both its writer's own
    row and a row of no writer, its own wins."""
    found: Known = {}
    for r in rows:
        key = (r["writer"], r["source"], r["id"])
        if key in found and r["applied_by"] != key[0]:
            continue
        outcome = [tuple(e) for e in json.loads(r["outcome"])]
        found[key] = (r["fingerprint"], outcome, r["applied_by"])
    return found


def known_from_records(records: Iterable[Sequence[Any]]) -> Known:
    """`KNOWN_ARRAY`'s records (positional, as PostgreSQL's anonymous records decode)."""
    return known_from(dict(zip(KNOWN_COLUMNS, r, strict=True)) for r in records)


async def known(conn: asyncpg.Connection, events: list[CloudEvent]) -> Known:
    """The messages of `events` applied before, with their fingerprint, outcome and the writer
    their row names (`KNOWN`)."""
    return known_from(await conn.fetch(KNOWN, *keys_of(events)))


INBOX_ROW = [
    ("writer", "text"),
    ("source", "text"),
    ("id", "text"),
    ("type", "text"),
    ("fingerprint", "text"),
    ("outcome", "text"),
]
OUTBOX_ROW = [("stream", "text"), ("fields", "text")]  # stored as sent (migration 003)


def record(out: Statements, rows: list[tuple[str, str, str, str, str, str]]) -> None:
    """Inbox rows: (writer, source, id, type, fingerprint, outcome as JSON), in one statement."""
    out.insert("inbox", INBOX_ROW, rows)


def insert_outbox(out: Statements, outbox: list[tuple[str, str]]) -> None:
    """Outbox rows: (stream key, fields as JSON), in the order given: the relay publishes by seq."""
    out.insert("outbox", OUTBOX_ROW, outbox)


def outcome(encoded: list[tuple[str, str]]) -> str:
    """The inbox's copy of the outcome, [[stream, fields], ...], from already-encoded fields."""
    return "[" + ",".join(f"[{json.dumps(stream)},{fields}]" for stream, fields in encoded) + "]"
