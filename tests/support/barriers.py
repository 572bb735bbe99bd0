"""Barriers: proof that a service has processed an entry, so that a test may then check what
did *not* happen by looking once.

An entry a service applies leaves an inbox row (source, id) in the same transaction as its
effects and its outbox rows, and that row keeps the outcome: every event the entry caused. So
once the row is there, its outcome is complete, and an empty one means the entry caused nothing.
Where no inbox row is written (a dead-lettered entry), a later entry's outcome is the barrier:
the relay publishes in commit order, so whatever the earlier entry committed is out before it.
"""

import json
from typing import Any

import asyncpg

from tests.support.waiting import until


async def inbox_outcome(
    database_url: str, schema: str, source: str, id_: str, *, timeout: float = 10
) -> list[tuple[str, dict[str, Any]]]:
    """What the entry (source, id_) caused, once `schema`'s service has applied it: each event
    with the stream it goes to, decoded as tests/support/streams.py decodes a stream's."""
    conn = await asyncpg.connect(database_url)
    try:
        stored = await until(
            lambda: conn.fetchval(
                f"SELECT outcome FROM {schema}.inbox WHERE source = $1 AND id = $2",
                source,
                id_,
            ),
            lambda found: found is not None,
            timeout=timeout,
            what=f"the inbox row of ({source}, {id_}) in {schema}",
        )
    finally:
        await conn.close()
    events: list[tuple[str, dict[str, Any]]] = []
    for stream, fields in json.loads(stored):
        event = dict(fields)
        if isinstance(event.get("data"), str):  # stored as sent: the payload as JSON text
            event["data"] = json.loads(event["data"])
        events.append((stream, event))
    return events
