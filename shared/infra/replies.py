"""Request/reply over streams: answer each query on the stream its `replyto` names."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from shared.contracts.envelope import LIMITS, CloudEvent, EnvelopeError, Limits, decode, new_event
from shared.contracts.errors import DomainError
from shared.contracts.messages import QUERY_FAILED, QUERY_RESULT
from shared.contracts.streams import Streams
from shared.infra.db import connection
from shared.infra.messaging import Entry, Outcome

Answer = Callable[[asyncpg.Connection, CloudEvent], Awaitable[dict[str, Any]]]
REPLY_TTL_SECONDS = 3600
log = logging.getLogger(__name__)


@dataclass
class Replier:
    pool: asyncpg.Pool
    redis: Redis
    answer: Answer
    source: str
    streams: Streams
    limits: Limits = LIMITS

    def usable(self, replyto: str | None) -> bool:
        """A reply may not be written into one of the platform's own streams."""
        return bool(replyto) and not str(replyto).startswith(
            (self.streams.key("alluse."), self.streams.key("ws"))
        )

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        """Each entry on its own: answered, dead-lettered, or (on an unexpected error) left
        pending for a later try; never the batch's failure."""
        out = Outcome()
        replies: list[tuple[bytes, dict[bytes, bytes], str, dict[str, str]]] = []
        async with connection(self.pool) as conn:
            for entry_id, fields in entries:
                try:
                    ev = decode(fields, self.limits)
                except EnvelopeError as exc:
                    out.dead.append((entry_id, fields, str(exc)))
                    continue
                if not self.usable(ev.replyto):
                    out.dead.append((entry_id, fields, "query has no usable 'replyto' stream"))
                    continue
                try:
                    reply = await self.reply(conn, ev, out)
                except Exception:
                    log.exception("query %s failed; left pending", entry_id.decode())
                    continue
                replies.append((entry_id, fields, str(ev.replyto), reply))
        pipe = self.redis.pipeline(transaction=False)
        for _, _, box, reply in replies:
            pipe.xadd(box, reply, maxlen=1000, approximate=True)  # type: ignore[arg-type]
            pipe.expire(box, REPLY_TTL_SECONDS)
        results = await pipe.execute(raise_on_error=False)
        for i, (entry_id, fields, box, _) in enumerate(replies):
            failed = [r for r in results[2 * i : 2 * i + 2] if isinstance(r, Exception)]
            if failed:  # e.g. `replyto` names a key that is not a stream
                out.dead.append((entry_id, fields, f"reply to '{box}' failed: {failed[0]}"))
            else:
                out.ack.append(entry_id)
        return out

    async def reply(self, conn: asyncpg.Connection, ev: CloudEvent, out: Outcome) -> dict[str, str]:
        try:
            data = await self.answer(conn, ev)
        except DomainError as r:
            failure = {
                "code": r.code,
                "reason": r.message,
                "query_type": ev.type,
                "query_id": ev.id,
            }
            out.rejected += 1
            return new_event(QUERY_FAILED, self.source, failure, subject=ev.subject, cause=ev)
        return new_event(QUERY_RESULT, self.source, data, subject=ev.subject, cause=ev)
