"""Every SQL statement of the integration service (schema `integration`)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from shared.contracts.envelope import CloudEvent
from shared.infra.stream import inbox
from shared.infra.stream.unit import Sql


def _week_on(day: str) -> str:
    """The week type in force on `day` (an SQL expression): that of the latest classified week
    starting by then."""
    return (
        "(SELECT week_type FROM week_types WHERE week_start <= "
        f"{day} ORDER BY week_start DESC LIMIT 1)"
    )


async def week_type_on(conn: Sql, *, day: date) -> str | None:
    """The week type in force on `day`."""
    value: str | None = await conn.fetchval(f"SELECT {_week_on('$1::date')}", day)
    return value


@dataclass(frozen=True)
class Forwarding:
    """What the forwarder reads of a batch before it forwards any of it."""

    waiting: bool  # the outbox holds events the relay has not confirmed yet (it deletes each
    # row once its event is durable): an entry forwarded straight now could overtake them
    known: inbox.Known  # which of the events' keys the inbox knows, as inbox.known reads them
    weeks: dict[date, str | None]  # the week type in force on each of the days


async def forwarding(
    conn: Sql, *, events: Sequence[CloudEvent], days: Sequence[date]
) -> Forwarding:
    """`Forwarding` of `events` and `days`, in one statement: one row, or one per known row."""
    rows = await conn.fetch(
        "SELECT o.waiting, o.weeks, k.* FROM (SELECT EXISTS (SELECT 1 FROM outbox) AS waiting,"
        f" ARRAY(SELECT {_week_on('d.day')} FROM unnest($4::date[]) WITH ORDINALITY"
        " AS d (day, n) ORDER BY d.n) AS weeks) AS o"
        f" LEFT JOIN ({inbox.KNOWN}) AS k ON true",
        *inbox.keys_of(events),
        list(days),
    )
    first = rows[0]
    return Forwarding(
        waiting=first["waiting"],
        known=inbox.known_from(r for r in rows if r["writer"] is not None),
        weeks=dict(zip(days, first["weeks"], strict=True)),
    )


async def latest_week(conn: Sql) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT week_start, week_type FROM week_types ORDER BY week_start DESC LIMIT 1"
    )
    return row


async def record_week(
    conn: Sql,
    *,
    week_start: date,
    week_type: str,
    confidence: Decimal,
    source: str,
    event_id: str,
) -> None:
    """A later classification of the same week (WS2 re-ran it) replaces the earlier one."""
    await conn.execute(
        "INSERT INTO week_types (week_start, week_type, confidence, source, event_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (week_start) DO UPDATE SET"
        " week_type = EXCLUDED.week_type, confidence = EXCLUDED.confidence,"
        " source = EXCLUDED.source, event_id = EXCLUDED.event_id, recorded_at = now()",
        week_start,
        week_type,
        confidence,
        source,
        event_id,
    )


async def record_quote(
    conn: Sql,
    *,
    symbol: str,
    bid: Decimal,
    ask: Decimal,
    last: Decimal,
    as_of: datetime,
    source: str,
) -> None:
    await conn.execute(
        "INSERT INTO quotes (symbol, bid, ask, last, as_of, source)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (symbol) DO UPDATE SET"
        " bid = EXCLUDED.bid, ask = EXCLUDED.ask, last = EXCLUDED.last,"
        " as_of = EXCLUDED.as_of, source = EXCLUDED.source, recorded_at = now()"
        " WHERE quotes.as_of <= EXCLUDED.as_of",
        symbol,
        bid,
        ask,
        last,
        as_of,
        source,
    )
