"""The integration service's unit of work: its handlers write directly (`db`, in the message's
savepoint), and the week type of a day is read once per batch: a fill or valuation then costs
no round trip of its own (a classification in the same batch makes it read again)."""

from datetime import date
from decimal import Decimal

import asyncpg

from services.integration import store
from shared.contracts.envelope import CloudEvent
from shared.infra.stream.unit import SqlUnit


class UpstreamUnit(SqlUnit):
    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self.weeks: dict[date, str | None] = {}

    @classmethod
    async def open(cls, conn: asyncpg.Connection, events: list[CloudEvent]) -> "UpstreamUnit":
        return cls(conn)

    async def week_type_on(self, day: date) -> str | None:
        """A read, outside the message's savepoint: it writes nothing to roll back."""
        if day not in self.weeks:
            self.weeks[day] = await store.week_type_on(self.conn, day=day)
        return self.weeks[day]

    async def record_week(
        self, *, week_start: date, week_type: str, confidence: Decimal, source: str, event_id: str
    ) -> None:
        await store.record_week(
            self.db,
            week_start=week_start,
            week_type=week_type,
            confidence=confidence,
            source=source,
            event_id=event_id,
        )
        self.weeks.clear()  # a day's week type may be this one now
