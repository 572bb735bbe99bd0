"""The exactly-once pipeline: every stage a message passes, from a batch of stream entries to
the inbox and outbox rows of one transaction, the same for every service.

A message's path: decode -> guard (who wrote it, may it) -> inbox check -> the service's unit of
work, one command scope per message -> dispatch table (type -> payload model -> handler) ->
audit of the outcome -> inbox and outbox rows, all in one transaction per batch; the caller
acknowledges afterwards and the relay publishes. A refusal by the guard is answered (a
rejection, an audit record, its lane's outcome) without an inbox row, so it never claims the
entry's (source, id); but an entry the guard refused after proving its writer (a genuine
token since expired, a scope) whose key that writer already applied with the same payload is
answered as its duplicate instead: a redelivery is never refused after it applied. Each
stage refuses with a DomainError, which becomes one `alluse.command.rejected`; the unit of
work rolls back that message's writes only, and the rest of its batch commits
(shared/infra/stream/unit.py)."""

import decimal
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import asyncpg
import orjson
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from shared.contracts.envelope import (
    LIMITS,
    CloudEvent,
    EnvelopeError,
    Limits,
    decode,
    dumps,
    explain,
    new_event,
)
from shared.contracts.errors import DomainError
from shared.contracts.lifecycle import dataschema
from shared.contracts.messages import COMMAND_REJECTED
from shared.contracts.money import amount_invalid
from shared.contracts.streams import AUDIT, Streams
from shared.infra.runtime import metrics, tracing
from shared.infra.runtime.bulk import Statements
from shared.infra.runtime.db import transaction
from shared.infra.stream import inbox, lanes
from shared.infra.stream.messaging import (
    AlreadyApplied,
    Emit,
    Entry,
    Guard,
    Handler,
    Outcome,
    Rejected,
)
from shared.infra.stream.unit import SqlUnit
from shared.infra.trust.audit import audit_event, batched, is_record
from shared.infra.trust.keys import KeysUnavailable

log = logging.getLogger(__name__)


class Unit(Protocol):
    """A service's per-batch unit of work: one scope per command; buffered writes land on flush()."""

    events: list[Emit]  # what the message in hand causes

    def command(self, ev: CloudEvent) -> AbstractAsyncContextManager[None]: ...

    async def flush(self, out: Statements) -> None: ...


UnitFactory = Callable[[asyncpg.Connection, list[CloudEvent]], Awaitable[Unit]]
# A unit that reads the inbox in its own first statement, one round trip fewer per batch:
# (connection, every message of the batch, those to open the unit for) -> (the unit, what the
# inbox knows of every message, as `inbox.known` reads it).
Opener = Callable[
    [asyncpg.Connection, list[CloudEvent], list[CloudEvent]], Awaitable[tuple[Unit, inbox.Known]]
]
Handle = Callable[[Any, Any], Awaitable[None]]  # (unit of work, payload)


@dataclass(frozen=True)
class Route:
    model: type[BaseModel]
    handle: Handle


@dataclass
class Pipeline:
    pool: asyncpg.Pool
    handler: Handler  # usually a Dispatch (below): its table's route for each message
    source: str  # CloudEvents source of what this service emits
    reject_stream: str  # where rejections go
    unit: UnitFactory = SqlUnit.open  # opened once per batch and handed to the handler
    opens: Opener | None = None  # instead of `unit`: one that also reads the inbox
    limits: Limits = LIMITS  # what one inbound entry may be (settings.limits)
    guard: Guard | None = None  # None only where the service itself made the entries
    streams: Streams | None = None  # where refusals leave their audit record
    # With no guard, the platform made the entries itself: their writer, `platform:<what>`, is
    # a key space no client or service entry can reach (a guard binds client: or service:).
    platform: str = "pipeline"
    outcomes: lanes.LaneOutcomes | None = None  # one outcome per lane entry (docs/lanes.md)

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        out = Outcome()
        good, lapsed = await self.admit(entries, out)
        if not good:
            return out
        refusals = (out.emitted, out.rejected, out.outboxed)
        try:
            # A batch's transaction serves entries of many traces: linked to each, child of none.
            with tracing.span("db transaction", links=[ev for _, ev in good]):
                async with transaction(self.pool) as conn:
                    await self._apply(conn, good, out, lapsed)
            out.ack.extend(i for i, _ in good)
        except Exception:
            # One bad apple must not hold the batch hostage: retry each on its own. What still
            # fails stays pending, to be reclaimed and, after enough tries, dead-lettered.
            log.warning("batch of %d failed; retrying one by one", len(good), exc_info=True)
            out.emitted, out.rejected, out.outboxed = refusals
            for item in good:
                try:
                    async with transaction(self.pool) as conn:
                        await self._apply(conn, [item], out, lapsed)
                    out.ack.append(item[0])
                except Exception as exc:
                    if (code := deterministic(exc)) is not None and await self._unstorable(
                        item[1], code, exc, out
                    ):
                        out.ack.append(item[0])
                        continue
                    log.exception("entry %s failed; left pending", item[0].decode())
                    out.failed[item[0]] = f"{type(exc).__name__}: {exc}"[:500]
        return out

    async def _unstorable(self, ev: CloudEvent, code: str, exc: Exception, out: Outcome) -> bool:
        """An entry whose values cannot be stored (e.g. beyond numeric(20,2)) fails the same
        way on every try: refused at once, with an inbox row like any refusal, rather than
        left pending and holding its whole partition for a reclaim interval per try."""
        log.warning("entry %s/%s refused: %s", ev.source, ev.id, exc)
        reason = f"a value cannot be stored ({type(exc).__name__}: {str(exc)[:200]})"
        emit = self.rejection(ev, code, reason, ev.subject)
        tracing.stamp(emit[1])
        encoded = [(emit[0], dumps(emit[1]))]
        try:
            async with transaction(self.pool) as conn:
                row = (
                    ev.writer,
                    ev.source,
                    ev.id,
                    ev.type,
                    ev.fingerprint(),
                    inbox.outcome(encoded),
                )
                writes = Statements()
                inbox.record(writes, [row])
                inbox.insert_outbox(writes, encoded)
                await writes.send(conn)
        except Exception:
            log.exception("refusal of %s/%s could not be written", ev.source, ev.id)
            return False
        out.rejected += 1
        out.emitted += 1
        out.outboxed += 1
        return True

    async def admit(
        self, entries: Sequence[Entry], out: Outcome
    ) -> tuple[list[tuple[bytes, CloudEvent]], dict[bytes, Rejected]]:
        """Decoded entries whose writer is proven and allowed; refusals answered at once. Also
        the entries whose writer the guard proved before it refused them (a genuine token
        since expired or revoked, a signature older than the window, a scope, a rate), each
        with its refusal: kept in the batch, which answers each as the duplicate of the entry
        its key applied, if its inbox holds that key with the same payload, else refuses it.
        So an entry applied and then redelivered is never refused afterwards."""
        good: list[tuple[bytes, CloudEvent]] = []
        lapsed: dict[bytes, Rejected] = {}
        refused: list[Emit] = []
        refused_ids: list[bytes] = []
        for entry_id, fields in entries:
            try:
                ev = decode(fields, self.limits)
            except EnvelopeError as exc:
                out.dead.append((entry_id, fields, str(exc)))
                if (o := self.origin(fields, None, trusted=False)) is not None:
                    refused.append(self.outcome_refused(o, "invalid_payload", str(exc), None))
                continue
            if self.guard is None:
                ev.verified_as(self.platform, "platform")
            else:
                try:
                    await self.guard(ev, fields)
                except KeysUnavailable:
                    out.held.append(entry_id)
                    continue
                except Rejected as r:
                    if ev.writer:  # proven: the batch answers it (its inbox may know its key)
                        ev.came_from(self.origin(fields, ev, trusted=True))
                        good.append((entry_id, ev))
                        lapsed[entry_id] = r
                        if isinstance(ev.origin, lanes.Origin):
                            out.answers[entry_id] = partial(self.outcome_refused, ev.origin, ev=ev)
                        continue
                    with tracing.span(f"refuse {ev.type}", parent=ev, service=self.source):
                        # An effect's carried lane is believed only with its signature.
                        ev.came_from(self.origin(fields, ev, trusted=False))
                        answer = self.refusal(ev, r)
                        for _, emitted in answer:
                            tracing.stamp(emitted)
                    refused += answer
                    refused_ids.append(entry_id)
                    continue
            ev.came_from(self.origin(fields, ev, trusted=True))
            good.append((entry_id, ev))
            out.writers[entry_id] = ev.writer
            if isinstance(ev.origin, lanes.Origin):  # its answer, should it be dead-lettered
                out.answers[entry_id] = partial(self.outcome_refused, ev.origin, ev=ev)
        if refused:
            refused = with_batches(refused)
            writes = Statements()
            inbox.insert_outbox(writes, [(s, dumps(fields)) for s, fields in refused])
            async with transaction(self.pool) as conn:
                await writes.send(conn)
            out.ack.extend(refused_ids)
            out.rejected += len(refused_ids)
            out.emitted += len(refused)
            out.outboxed += len(refused)
        return good, lapsed

    async def _apply(
        self,
        conn: asyncpg.Connection,
        items: Sequence[tuple[bytes, CloudEvent]],
        out: Outcome,
        lapsed: Mapping[bytes, Rejected],
    ) -> None:
        unit: Unit | None = None
        opening = [ev for i, ev in items if i not in lapsed]  # those its inbox may not know
        if self.opens is not None and opening:
            unit, known = await self.opens(conn, [ev for _, ev in items], opening)
        else:
            known = await inbox.known(conn, [ev for _, ev in items])
        rows: list[tuple[str, str, str, str, str, str]] = []
        outbox: list[tuple[str, str]] = []  # (stream key, fields as JSON): encoded once
        # Each message's audit records stay in its inbox outcome; the outbox gets the batch's
        # records together, in `alluse.audit.batch` entries (shared/infra/trust/audit.py).
        records: list[Emit] = []

        def emit(each: Emit, encoded: tuple[str, str] | None = None) -> None:
            """To the outbox, but an audit record to the batch's records."""
            if is_record(each[1]):
                records.append(each)
            else:
                outbox.append(encoded or (each[0], dumps(each[1])))

        fresh = [ev for i, ev in items if ev.key not in known and i not in lapsed]
        if fresh and unit is None:
            unit = await self.unit(conn, fresh)
        for entry_id, ev in items:
            prior = known.get(ev.key)
            refused = lapsed.get(entry_id)
            if refused is not None and (
                prior is None or prior[2] != ev.writer or prior[0] not in ev.fingerprints()
            ):
                # Not the entry its own writer's key applied (a row of no writer, written
                # before keys named one, answers only valid entries): the refusal stands.
                with tracing.span(f"refuse {ev.type}", parent=ev, service=self.source):
                    answer = self.refusal(ev, refused)
                    for _, emitted in answer:
                        tracing.stamp(emitted)
                for each in answer:
                    emit(each)
                out.rejected += 1
                continue
            if prior is not None:
                if prior[0] in ev.fingerprints():  # the same outcome again, same event ids
                    for each in prior[1]:
                        emit(each)
                    outbox.extend(self.lane_outcome(ev, prior[1], again=True))
                else:
                    reason = (
                        f"({ev.source}, {ev.id}) was already applied with another payload"
                        " from the same writer"
                    )
                    stream, fields = self.rejection(ev, "idempotency_conflict", reason, None)
                    outbox.append((stream, dumps(fields)))
                    outbox.extend(self.lane_outcome(ev, [(stream, fields)]))
                    out.rejected += 1
                continue
            assert unit is not None  # every message not in the inbox is fresh
            with tracing.span(
                f"consume {ev.type}", parent=ev, kind=SpanKind.CONSUMER, service=self.source
            ):
                emits, of = await self._handle(unit, ev, out)
            fingerprint = ev.fingerprint()
            known[ev.key] = (fingerprint, emits, ev.writer)
            encoded = [(stream, dumps(fields)) for stream, fields in emits]
            rows.append((ev.writer, ev.source, ev.id, ev.type, fingerprint, inbox.outcome(encoded)))
            for each, json in zip(emits, encoded, strict=True):
                emit(each, json)
            outbox.extend(self.lane_outcome(ev, emits, of=of))
        for stream, fields in batched(records):
            tracing.stamp(fields)  # the batch's transaction, linked to each of its messages
            outbox.append((stream, dumps(fields)))
        writes = Statements()  # the unit's, then the inbox's and the outbox's: one round trip
        if unit is not None:
            await unit.flush(writes)
        inbox.record(writes, rows)
        inbox.insert_outbox(writes, outbox)
        await writes.send(conn)
        out.emitted += len(outbox)
        out.outboxed += len(outbox)

    async def _handle(
        self, unit: Unit, ev: CloudEvent, out: Outcome
    ) -> tuple[list[Emit], tuple[str, str] | None]:
        """One message in its command scope; a refusal is its rejection. Emits carry the trace.
        Also the (source, id) of the entry this one repeats, if the handler found one."""
        of = None
        try:
            with tracing.span(f"handle {ev.type}"):
                async with unit.command(ev):  # a rejection rolls back this message's writes only
                    try:
                        emits = await self.handler(unit, ev)
                    except ValidationError as exc:
                        # An event the entry's own values cannot make (its contract model
                        # refuses them, e.g. an amount beyond the books): the same on every
                        # try, so this entry's refusal, never a failed batch to retry.
                        code = "invalid_amount" if amount_invalid(exc) else "invalid_payload"
                        raise Rejected(code, explain(exc), subject=ev.subject) from None
        except AlreadyApplied as again:  # nothing happens: its lane hears `duplicate`
            emits, of = [], again.of
        except DomainError as r:
            extra = r.extra if isinstance(r, Rejected) else []
            emits = [self.rejection(ev, r.code, r.message, r.subject or ev.subject), *extra]
            out.rejected += 1
        for _, fields in emits:
            tracing.stamp(fields)
        return emits, of

    def rejection(
        self,
        ev: CloudEvent,
        code: str,
        reason: str,
        subject: str | None,
        event_id: str | None = None,
    ) -> Emit:
        # The type as its writer sent it (an effect's `ws4.*` type), so the writer knows it.
        data = {"code": code, "reason": reason, "command_type": ev.sent_type, "command_id": ev.id}
        if code in ("unauthorized", "forbidden"):
            metrics.TOKEN_REFUSALS.labels(code).inc()
        fields = new_event(
            COMMAND_REJECTED,
            self.source,
            data,
            subject=subject or ev.subject,
            cause=ev,
            event_id=event_id or f"{ev.key_digest()}:rejected",
            # Every rejection names its schema, whichever service writes it: the integration
            # service's own go straight to the lifecycle stream, not through its republisher.
            dataschema=dataschema(COMMAND_REJECTED),
        )
        return (self.reject_stream, fields)

    def origin(
        self, fields: dict[bytes, bytes], ev: CloudEvent | None, *, trusted: bool
    ) -> lanes.Origin | None:
        """The lane entry `fields` came from, when this pipeline answers lanes. An effect's
        carried origin (signed by its writer) only once `trusted` (its signature checked)."""
        o = self.outcomes
        if o is None or (o.carried and not trusted):
            return None
        return lanes.origin_of(fields, ev, o.stream, carried=o.carried)

    def outcome_refused(
        self, origin: lanes.Origin, code: str, reason: str, ev: CloudEvent | None
    ) -> Emit:
        assert self.outcomes is not None  # an origin is found only where outcomes are written
        return lanes.refused(
            self.outcomes.streams, self.source, origin, code=code, reason=reason, cause=ev
        )

    def lane_outcome(
        self,
        ev: CloudEvent,
        emits: Sequence[Emit],
        *,
        again: bool = False,
        of: tuple[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """The entry's one outcome for its lane, if it came through one and this service
        decides it: refused (the rejection among `emits`), duplicate (`again`, or `of` another
        entry that applied the same), or applied with the events it caused (audit records
        aside)."""
        origin, o = ev.origin, self.outcomes
        if not isinstance(origin, lanes.Origin) or o is None:
            return []
        rejection = next(
            (
                f
                for _, f in emits
                if f.get("type") == COMMAND_REJECTED and f.get("causationid") == ev.id
            ),
            None,
        )
        if rejection is not None:
            data = orjson.loads(rejection["data"])
            emit = lanes.refused(
                o.streams,
                self.source,
                origin,
                code=str(data.get("code")),
                reason=str(data.get("reason")),
                cause=ev,
            )
            return [(emit[0], dumps(emit[1]))]
        if ev.type in o.delegated:  # forwarded with its lane: the account service answers
            return []
        audit = o.streams.key(AUDIT)
        caused = [(stream, f) for stream, f in emits if stream != audit]
        if of is not None:
            stream, fields = lanes.duplicate(
                o.streams, self.source, origin, events=caused, cause=ev, of_entry=of
            )
        else:
            make = lanes.duplicate if again else lanes.applied
            stream, fields = make(o.streams, self.source, origin, events=caused, cause=ev)
        return [(stream, dumps(fields))]

    def refusal(self, ev: CloudEvent, r: Rejected) -> list[Emit]:
        """An entry refused for who wrote it: ids of its own, so no key is claimed."""
        emits = [self.rejection(ev, r.code, r.reason, r.subject, event_id=str(uuid.uuid4()))]
        if isinstance(ev.origin, lanes.Origin):
            emits.append(self.outcome_refused(ev.origin, r.code, r.reason, ev))
        if r.code == "rate_limited":  # a flood is counted, never one audit record per entry
            metrics.RATE_LIMITED.labels("command").inc()
            return emits
        if self.streams is not None:
            details = {
                "message_type": ev.sent_type,
                "message_id": ev.id,
                "source": ev.source,
                "code": r.code,
                "reason": r.reason[:300],
            }
            if ev.writer:  # verified, e.g. the engine behind an effect refused for its scope
                details["writer"] = ev.writer
            emits.append(
                audit_event(
                    self.streams,
                    source=self.source,
                    action="command.denied",
                    actor=ev.actor or "anonymous",  # a verified writer outside its scope
                    subject=ev.subject,
                    details=details,
                    cause=ev,
                    event_id=str(uuid.uuid4()),
                )
            )
        return emits


@dataclass
class Dispatch:
    """The handler a Pipeline runs for a table: type -> payload model -> the route's handler ->
    audit of the outcome. Who wrote the message was proven before, by the pipeline's guard."""

    table: Mapping[str, Route]
    streams: Streams
    source: str  # CloudEvents source of the audit records
    audited: bool = False  # an audit record of every outcome
    subject_is_account: bool = True
    heard: Callable[[str], None] = lambda _source: None  # e.g. when an upstream was last heard

    async def __call__(self, unit: Unit, ev: CloudEvent) -> list[Emit]:
        self.heard(ev.source)
        route = self.table.get(ev.type)
        if route is None:
            known = ", ".join(sorted(self.table)[:12])
            raise Rejected("unknown_type", f"'{ev.type}' is not one of {known}")
        actor = ev.actor or ev.source  # proven by the guard: a token's subject, or a service
        await route.handle(
            unit, payload(route.model, ev, subject_is_account=self.subject_is_account)
        )
        if self.audited and unit.events:
            done = sorted({fields["type"] for _, fields in unit.events})
            details = {
                "message_type": ev.sent_type,  # as its writer sent it (ws4.*, not the effect's)
                "message_id": ev.id,
                "source": ev.source,
                "outcome": done,
            }
            if ev.redriven_by:  # applied as its original writer, on an operator's authority
                details["redriven_by"] = ev.redriven_by
            unit.events.append(
                audit_event(
                    self.streams,
                    source=self.source,
                    action=ev.type,
                    actor=actor,
                    subject=ev.subject,
                    details=details,
                    cause=ev,
                )
            )
        return unit.events


def with_batches(emits: Sequence[Emit]) -> list[Emit]:
    """`emits` with their audit records folded into batch entries, at the end."""
    return [e for e in emits if not is_record(e[1])] + batched(
        [e for e in emits if is_record(e[1])]
    )


def deterministic(exc: BaseException) -> str | None:
    """The refusal code of a failure that would recur on every try, or None (may pass later).

    PostgreSQL's data exceptions (SQLSTATE class 22: a number out of its column's range, a
    string too long, an invalid value) depend only on the entry, as do decimal arithmetic
    errors; a lost connection, a deadlock or a unique violation from a concurrent batch do not.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, asyncpg.NumericValueOutOfRangeError | decimal.DecimalException):
            return "invalid_amount"
        if isinstance(cur, asyncpg.DataError):
            return "invalid_payload"
        cur = cur.__cause__ or cur.__context__
    return None


def payload(model: type[BaseModel], ev: CloudEvent, *, subject_is_account: bool) -> Any:
    """The message's data as `model`; a subject naming another account than the data is refused.

    `subject_is_account`: a missing data.account_id is taken from the subject (commands).
    """
    if ev.duplicate_keys:
        twice = ", ".join(repr(k[:50]) for k in ev.duplicate_keys[:5])
        reason = f"data names {twice} more than once: which value was meant cannot be known"
        raise Rejected("invalid_payload", reason, subject=ev.subject)
    data = dict(ev.data)
    if ev.subject and "account_id" in model.model_fields:
        named = (
            data.setdefault("account_id", ev.subject)
            if subject_is_account
            else data.get("account_id")
        )
        if named is not None and named != ev.subject:
            raise Rejected("invalid_payload", "subject and data.account_id name different accounts")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        code = "invalid_amount" if amount_invalid(exc) else "invalid_payload"
        raise Rejected(code, explain(exc), subject=ev.subject) from None
    except Exception as exc:  # a validator's own error (e.g. decimal.Overflow) is this entry's
        reason = f"unreadable payload ({type(exc).__name__})"
        raise Rejected("invalid_payload", reason, subject=ev.subject) from None
