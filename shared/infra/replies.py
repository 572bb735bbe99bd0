"""Request/reply over streams: answer each query on the stream its `replyto` names."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from shared.contracts.envelope import CloudEvent, EnvelopeError, decode, new_event
from shared.contracts.streams import Streams
from shared.infra.db import connection
from shared.infra.messaging import Entry, Outcome, Rejected

Answer = Callable[[asyncpg.Connection, CloudEvent], Awaitable[dict[str, Any]]]
RESULT, FAILED = "alluse.query.result", "alluse.query.failed"
REPLY_TTL_SECONDS = 3600


@dataclass
class Replier:
    pool: asyncpg.Pool
    redis: Redis
    answer: Answer
    source: str
    streams: Streams

    def usable(self, replyto: str | None) -> bool:
        """A reply may not be written into one of the platform's own streams."""
        return bool(replyto) and not str(replyto).startswith(
            (self.streams.key("alluse."), self.streams.key("ws"))
        )

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        out = Outcome()
        pipe = self.redis.pipeline(transaction=False)
        async with connection(self.pool) as conn:
            for entry_id, fields in entries:
                try:
                    ev = decode(fields)
                except EnvelopeError as exc:
                    out.dead.append((entry_id, fields, str(exc)))
                    continue
                if not self.usable(ev.replyto):
                    out.dead.append((entry_id, fields, "query has no usable 'replyto' stream"))
                    continue
                try:
                    reply = new_event(
                        RESULT,
                        self.source,
                        await self.answer(conn, ev),
                        subject=ev.subject,
                        cause=ev,
                    )
                except Rejected as r:
                    data = {
                        "code": r.code,
                        "reason": r.reason,
                        "query_type": ev.type,
                        "query_id": ev.id,
                    }
                    reply = new_event(FAILED, self.source, data, subject=ev.subject, cause=ev)
                    out.rejected += 1
                pipe.xadd(ev.replyto, reply, maxlen=1000, approximate=True)  # type: ignore[arg-type]
                pipe.expire(ev.replyto, REPLY_TTL_SECONDS)  # type: ignore[arg-type]
                out.ack.append(entry_id)
        await pipe.execute()
        return out
