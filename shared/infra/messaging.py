"""The exactly-once pipeline: one transaction per batch holding inbox rows, effects and outbox.

A message's path: decode -> guard (who wrote it, may it) -> inbox check -> handler (load,
pure decision, write) -> outbox, all in one transaction per batch; the caller acknowledges
afterwards and the relay publishes. A refusal by the guard is answered (a rejection and an
audit record) without an inbox row, so it never claims the entry's (source, id). Each message
is handled inside its unit of work's command scope (shared/infra/unit.py): a rejected one
leaves no write behind, and the rest of its batch commits.
"""

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from opentelemetry.trace import SpanKind

from shared.contracts.envelope import (
    LIMITS,
    CloudEvent,
    EnvelopeError,
    Limits,
    decode,
    dumps,
    new_event,
)
from shared.contracts.errors import DomainError
from shared.contracts.messages import COMMAND_REJECTED
from shared.contracts.streams import Streams
from shared.infra import metrics, tracing
from shared.infra.audit import audit_event
from shared.infra.bulk import insert_rows
from shared.infra.db import transaction
from shared.infra.keys import KeysUnavailable
from shared.infra.unit import SqlUnit

log = logging.getLogger(__name__)

Emit = tuple[str, dict[str, str]]  # (stream key, CloudEvent fields)
# A handler gets its service's unit of work (the only door to state) and the message.
Handler = Callable[[Any, CloudEvent], Awaitable[list[Emit]]]


class Unit(Protocol):
    """A service's per-batch unit of work: one scope per command; buffered writes land on flush()."""

    def command(self, ev: CloudEvent) -> AbstractAsyncContextManager[None]: ...

    async def flush(self) -> None: ...


# Proves who wrote an entry and that it may (ev.verified_as(...)); raises Rejected to refuse
# it, KeysUnavailable to leave it waiting.
Guard = Callable[[CloudEvent, dict[bytes, bytes]], Awaitable[None]]
UnitFactory = Callable[[asyncpg.Connection, list[CloudEvent]], Awaitable[Unit]]
Entry = tuple[bytes, dict[bytes, bytes]]  # (stream entry id, fields)


class Rejected(DomainError):
    """A caller-fixable problem found outside a domain (token, type, payload), code given."""

    def __init__(self, code: str, reason: str, subject: str | None = None) -> None:
        super().__init__(reason, subject=subject)
        self.code = code
        self.extra: list[Emit] = []  # e.g. an audit record of the refusal, published with it


@dataclass
class Outcome:
    """What a batch produced: entries to acknowledge, entries to dead-letter, events written."""

    ack: list[bytes] = field(default_factory=list)
    dead: list[tuple[bytes, dict[bytes, bytes], str]] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)  # waiting for the keys: retried, not counted
    failed: dict[bytes, str] = field(default_factory=dict)  # left pending: the error, for the DLQ
    emitted: int = 0
    rejected: int = 0


@dataclass
class Pipeline:
    pool: asyncpg.Pool
    handler: Handler
    source: str  # CloudEvents source of what this service emits
    reject_stream: str  # where rejections go
    unit: UnitFactory = SqlUnit.open  # opened once per batch and handed to the handler
    limits: Limits = LIMITS  # what one inbound entry may be (settings.limits)
    guard: Guard | None = None  # None only where the service itself made the entries
    streams: Streams | None = None  # where refusals leave their audit record

    def rejection(
        self,
        ev: CloudEvent,
        code: str,
        reason: str,
        subject: str | None,
        event_id: str | None = None,
    ) -> Emit:
        data = {"code": code, "reason": reason, "command_type": ev.type, "command_id": ev.id}
        if code in ("unauthorized", "forbidden"):
            metrics.TOKEN_REFUSALS.labels(code).inc()
        fields = new_event(
            COMMAND_REJECTED,
            self.source,
            data,
            subject=subject or ev.subject,
            cause=ev,
            event_id=event_id or f"{ev.key_digest()}:rejected",
        )
        return (self.reject_stream, fields)

    def refusal(self, ev: CloudEvent, r: Rejected) -> list[Emit]:
        """An entry refused for who wrote it: ids of its own, so no key is claimed."""
        emits = [self.rejection(ev, r.code, r.reason, r.subject, event_id=str(uuid.uuid4()))]
        if self.streams is not None:
            details = {"message_type": ev.type, "message_id": ev.id, "source": ev.source,
                       "code": r.code, "reason": r.reason[:300]}  # fmt: skip
            emits.append(
                audit_event(
                    self.streams,
                    source=self.source,
                    action="command.denied",
                    actor="anonymous",
                    subject=ev.subject,
                    details=details,
                    cause=ev,
                    event_id=str(uuid.uuid4()),
                )
            )
        return emits

    async def admit(self, entries: Sequence[Entry], out: Outcome) -> list[tuple[bytes, CloudEvent]]:
        """Decoded entries whose writer is proven and allowed; refusals answered at once."""
        good: list[tuple[bytes, CloudEvent]] = []
        refused: list[Emit] = []
        refused_ids: list[bytes] = []
        for entry_id, fields in entries:
            try:
                ev = decode(fields, self.limits)
            except EnvelopeError as exc:
                out.dead.append((entry_id, fields, str(exc)))
                continue
            if self.guard is not None:
                try:
                    await self.guard(ev, fields)
                except KeysUnavailable:
                    out.held.append(entry_id)
                    continue
                except Rejected as r:
                    with tracing.span(f"refuse {ev.type}", parent=ev, service=self.source):
                        answer = self.refusal(ev, r)
                        for _, emitted in answer:
                            tracing.stamp(emitted)
                    refused += answer
                    refused_ids.append(entry_id)
                    continue
            good.append((entry_id, ev))
        if refused:
            async with transaction(self.pool) as conn:
                await _insert_outbox(conn, [(stream, dumps(fields)) for stream, fields in refused])
            out.ack.extend(refused_ids)
            out.rejected += len(refused_ids)
            out.emitted += len(refused)
        return good

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        out = Outcome()
        good = await self.admit(entries, out)
        if not good:
            return out
        refusals = (out.emitted, out.rejected)
        try:
            # A batch's transaction serves entries of many traces: linked to each, child of none.
            with tracing.span("db transaction", links=[ev for _, ev in good]):
                async with transaction(self.pool) as conn:
                    await self._apply(conn, good, out)
            out.ack.extend(i for i, _ in good)
        except Exception:
            # One bad apple must not hold the batch hostage: retry each on its own. What still
            # fails stays pending, to be reclaimed and, after enough tries, dead-lettered.
            log.warning("batch of %d failed; retrying one by one", len(good), exc_info=True)
            out.emitted, out.rejected = refusals
            for item in good:
                try:
                    async with transaction(self.pool) as conn:
                        await self._apply(conn, [item], out)
                    out.ack.append(item[0])
                except Exception as exc:
                    log.exception("entry %s failed; left pending", item[0].decode())
                    out.failed[item[0]] = f"{type(exc).__name__}: {exc}"[:500]
        return out

    async def _apply(
        self, conn: asyncpg.Connection, items: Sequence[tuple[bytes, CloudEvent]], out: Outcome
    ) -> None:
        rows = await conn.fetch(
            "SELECT source, id, fingerprint, outcome FROM inbox"
            " WHERE (source, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [ev.source for _, ev in items],
            [ev.id for _, ev in items],
        )
        known: dict[tuple[str, str], tuple[str, list[Emit]]] = {
            (r["source"], r["id"]): (r["fingerprint"], [tuple(e) for e in json.loads(r["outcome"])])
            for r in rows
        }
        inbox: list[tuple[str, str, str, str, str]] = []
        outbox: list[tuple[str, str]] = []  # (stream key, fields as JSON): encoded once
        fresh = [ev for _, ev in items if ev.key not in known]
        unit = await self.unit(conn, fresh) if fresh else None
        for _, ev in items:
            prior = known.get(ev.key)
            if prior is not None:
                if prior[0] == ev.fingerprint():  # the same outcome again, with the same event ids
                    outbox.extend((stream, dumps(fields)) for stream, fields in prior[1])
                else:
                    reason = f"({ev.source}, {ev.id}) was already applied with another payload"
                    stream, fields = self.rejection(ev, "idempotency_conflict", reason, None)
                    outbox.append((stream, dumps(fields)))
                    out.rejected += 1
                continue
            assert unit is not None  # every message not in the inbox is fresh
            with tracing.span(
                f"consume {ev.type}", parent=ev, kind=SpanKind.CONSUMER, service=self.source
            ):
                emits = await self._handle(unit, ev, out)
            fingerprint = ev.fingerprint()
            known[ev.key] = (fingerprint, emits)
            encoded = [(stream, dumps(fields)) for stream, fields in emits]
            inbox.append((ev.source, ev.id, ev.type, fingerprint, _outcome(encoded)))
            outbox.extend(encoded)
        if unit is not None:
            await unit.flush()
        await insert_rows(conn, "inbox", INBOX_ROW, inbox)
        await _insert_outbox(conn, outbox)
        out.emitted += len(outbox)

    async def _handle(self, unit: Unit, ev: CloudEvent, out: Outcome) -> list[Emit]:
        """One message in its command scope; a refusal is its rejection. Emits carry the trace."""
        try:
            with tracing.span(f"handle {ev.type}"):
                async with unit.command(ev):  # a rejection rolls back this message's writes only
                    emits = await self.handler(unit, ev)
        except DomainError as r:
            extra = r.extra if isinstance(r, Rejected) else []
            emits = [self.rejection(ev, r.code, r.message, r.subject or ev.subject), *extra]
            out.rejected += 1
        for _, fields in emits:
            tracing.stamp(fields)
        return emits


INBOX_ROW = [("source", "text"), ("id", "text"), ("type", "text"), ("fingerprint", "text"),
             ("outcome", "jsonb")]  # fmt: skip


async def _insert_outbox(conn: asyncpg.Connection, outbox: list[tuple[str, str]]) -> None:
    """In the order given: the relay publishes by seq."""
    await insert_rows(conn, "outbox", [("stream", "text"), ("fields", "jsonb")], outbox)


def _outcome(encoded: list[tuple[str, str]]) -> str:
    """The inbox's copy of the outcome, [[stream, fields], ...], from already-encoded fields."""
    return "[" + ",".join(f"[{json.dumps(stream)},{fields}]" for stream, fields in encoded) + "]"


def dead_letter_fields(
    fields: dict[bytes, bytes], *, reason: str, stream: str, entry_id: bytes, deliveries: int
) -> dict[Any, Any]:
    """The original fields, so an operator can re-drive them, plus why it failed.

    A bearer token is not copied: the dead-letter stream is kept long and read by operators;
    re-driving a command takes a fresh token.
    """
    kept = {k: (b"[redacted]" if k == b"authorization" else v) for k, v in fields.items()}
    return {
        **kept,
        b"dlq_reason": reason.encode()[:2000],
        b"dlq_stream": stream.encode(),
        b"dlq_entry_id": entry_id,
        b"dlq_deliveries": str(deliveries).encode(),
    }
