"""Every SQL statement of the integration service (schema `integration`)."""

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from shared.infra.stream.unit import Sql


async def week_type_on(conn: Sql, *, day: date) -> str | None:
    """The week type in force on `day`: that of the latest classified week starting by then."""
    value: str | None = await conn.fetchval(
        "SELECT week_type FROM week_types WHERE week_start <= $1 ORDER BY week_start DESC LIMIT 1",
        day,
    )
    return value


async def week_types_on(conn: Sql, *, days: Sequence[date]) -> dict[date, str | None]:
    """The week type in force on each of `days` (as `week_type_on`), in one statement."""
    rows = await conn.fetch(
        "SELECT d.day, (SELECT w.week_type FROM week_types w WHERE w.week_start <= d.day"
        " ORDER BY w.week_start DESC LIMIT 1) AS week_type FROM unnest($1::date[]) AS d (day)",
        list(days),
    )
    return {r["day"]: r["week_type"] for r in rows}


async def unpublished(conn: Sql) -> bool:
    """Whether the outbox holds events the relay has not confirmed yet (it deletes each row
    once its event is durable): an entry forwarded straight now could overtake them."""
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)")
    return found


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
