"""Request/reply over streams: answer each query on the stream its `replyto` names.

Nothing is answered before the query's token is verified, and only into the caller's own
reply namespace (`<prefix>alluse.reply.<token subject>.`, shared/contracts/trust.py). A
query whose token fails, or whose `replyto` lies elsewhere, is dead-lettered with the reason
and leaves an audit record (`query.denied`): there is no stream the service may answer it on. The service sets an expiry only on a reply
stream it created itself, and never trims one.

Fairness (docs/scopes.md, "Limits"): each client's queries pass its own token bucket (over it,
the answer is `rate_limited`, made without touching the database); a batch is answered round
robin across its clients, so one client's flood does not queue another's query behind it; and
the reply streams made for one client are capped in number (the oldest beyond the cap is
deleted) and expire `reply_ttl` seconds after their answer.
"""

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
from redis.asyncio import Redis

from shared.contracts.envelope import CloudEvent, EnvelopeError, Limits, decode, new_event
from shared.contracts.errors import DomainError
from shared.contracts.messages import QUERY_FAILED, QUERY_RESULT
from shared.contracts.streams import ACCOUNT_QUERIES, FIXED_LANES, Streams
from shared.contracts.trust import reply_namespace, replyto_allowed
from shared.infra.runtime import metrics, tracing
from shared.infra.runtime.db import connection
from shared.infra.stream import lanes
from shared.infra.stream.lanes import Origin, Registry
from shared.infra.stream.limits import Buckets, refusal
from shared.infra.stream.messaging import Emit, Entry, Outcome, Rejected
from shared.infra.trust.audit import audit_event
from shared.infra.trust.auth import Principal, Verifier, permit
from shared.infra.trust.keys import KeysUnavailable

Answer = Callable[[asyncpg.Connection, CloudEvent], Awaitable[dict[str, Any]]]
REPLY_TTL_SECONDS = 300
REPLY_SPACE = "alluse.reply."
# What a query costs of its client's bucket: these read every account's ledger.
QUERY_COST = {"alluse.query.integrity": 10.0, "alluse.query.summary": 2.0}


def query_cost(fields: dict[bytes, bytes]) -> float:
    """What a query entry costs, by the type it names (1 for anything else)."""
    return QUERY_COST.get(fields.get(b"type", b"").decode(errors="replace"), 1.0)


ANSWERING = 3  # queries answered at once (each holds a pooled connection meanwhile)
log = logging.getLogger(__name__)


@dataclass
class Replier:
    pool: asyncpg.Pool
    redis: Redis
    answer: Answer
    source: str
    streams: Streams
    limits: Limits
    verifier: Verifier
    sign: Callable[[dict[str, str]], dict[str, str]]
    buckets: Buckets | None = None  # each client's query rate (None: no limit)
    # Signs many at once (one Ed25519 signature per 64): a flood's refusals stay cheap.
    sign_many: Callable[[list[dict[str, str]]], list[dict[str, str]]] | None = None
    replies_per_client: int = 100  # reply streams kept per client; the oldest beyond go
    reply_ttl: int = REPLY_TTL_SECONDS
    # The reply streams this process made, per client, oldest first.
    made: dict[str, OrderedDict[str, None]] = field(default_factory=dict)
    lanes: str | None = None  # settings.lanes; None: no lanes (a tool's own replier)
    registry: Registry | None = None  # the lane names: who is a machine client

    async def admit(
        self, entry_id: bytes, fields: dict[bytes, bytes], out: Outcome, denied: list[Emit]
    ) -> tuple[CloudEvent, Principal] | None:
        """The decoded query and its verified caller, or None (dead-lettered or held); each
        refusal also leaves an audit record in `denied`."""
        try:
            ev = decode(fields, self.limits)
        except EnvelopeError as exc:
            out.dead.append((entry_id, fields, str(exc)))
            if (o := lanes.origin_of(fields, None, ACCOUNT_QUERIES)) is not None:
                denied.append(self.lane_refused(o, "invalid_payload", str(exc), cause=None))
            return None
        ev.came_from(lanes.origin_of(fields, ev, ACCOUNT_QUERIES))
        try:
            who = await self.verifier.principal(ev.authorization)
        except Rejected as r:
            reason = f"{r.code}: {r.reason}"
            self.refuse(
                entry_id, fields, ev, reason=reason, actor="anonymous", out=out, denied=denied
            )
            return None
        except KeysUnavailable:
            out.held.append(entry_id)
            return None
        if self.lanes is not None:
            try:
                if ev.origin is None:
                    lanes.unlaned(self.lanes, self.streams.key(ACCOUNT_QUERIES))
                else:
                    known = await self.registry.names() if self.registry else FIXED_LANES
                    lanes.bind(ev.origin.lane, who.subject, who.role, known)
            except Rejected as r:
                reason = f"{r.code}: {r.reason}"
                self.refuse(
                    entry_id, fields, ev, reason=reason, actor=who.subject, out=out, denied=denied
                )
                return None
        if ev.origin is not None:  # a lane's answers go to the lane's own reply streams
            space = self.streams.replies(ev.origin.lane)
            allowed = bool(ev.replyto) and str(ev.replyto).startswith(space)
            allowed = allowed and len(str(ev.replyto)) > len(space)
        else:
            space = reply_namespace(self.streams.prefix, who.subject)
            allowed = replyto_allowed(self.streams.prefix, who.subject, ev.replyto)
        if not allowed:
            reason = f"'replyto' must be a key under {space}"
            self.refuse(
                entry_id, fields, ev, reason=reason, actor=who.subject, out=out, denied=denied
            )
            return None
        ev.verified_as(who.subject)
        ev.scoped_to(who.scope)  # the answerer reads only what the scope covers
        return ev, who

    def refuse(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        ev: CloudEvent,
        *,
        reason: str,
        actor: str,
        out: Outcome,
        denied: list[Emit],
    ) -> None:
        """Answered nowhere (no stream the caller may be answered on): dead-lettered, audited;
        a refusal for who wrote it, which a re-drive never applies; refused on its lane's
        outcome stream when it came through one."""
        out.dead.append((entry_id, fields, reason))
        out.refused_writer.add(entry_id)
        out.rejected += 1
        if ev.origin is not None:
            code, _, why = reason.partition(": ")
            code, why = (code, why) if why and code.isidentifier() else ("forbidden", reason)
            denied.append(self.lane_refused(ev.origin, code, why, cause=ev))
        details = {
            "message_type": ev.type,
            "message_id": ev.id,
            "source": ev.source,
            "reason": reason[:300],
        }
        denied.append(
            audit_event(
                self.streams,
                source=self.source,
                action="query.denied",
                actor=actor,
                subject=ev.subject,
                details=details,
                event_id=str(uuid.uuid4()),
            )
        )

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        """Each entry on its own: answered, dead-lettered, or (on an unexpected error) left
        pending for a later try; never the batch's failure. Up to ANSWERING are answered at
        once, each on a pooled connection of its own, so that a busy process still answers a
        batch of queries in a few turns of its event loop rather than two per query."""
        out = Outcome()
        denied: list[Emit] = []
        admitted = []
        limited: list[tuple[bytes, dict[bytes, bytes], str, dict[str, str]]] = []
        for entry_id, fields in entries:
            found = await self.admit(entry_id, fields, out, denied)
            if found is None:
                continue
            ev, who = found
            wait = (
                None
                if self.buckets is None
                else self.buckets.take(who.subject, QUERY_COST.get(ev.type, 1.0))
            )
            if wait is not None:  # answered at once, without the database
                metrics.RATE_LIMITED.labels("query").inc()
                r = refusal(wait, "queries")
                limited.append((entry_id, fields, str(ev.replyto), self.failure(ev, r)))
                if ev.origin is not None:  # its writer learns it on its lane too
                    denied.append(self.lane_refused(ev.origin, r.code, r.message, cause=ev))
                out.rejected += 1
                continue
            admitted.append((entry_id, fields, ev, who))
            if ev.origin is not None:  # its answer, should it be dead-lettered
                out.answers[entry_id] = partial(self.lane_refused, ev.origin, cause=ev)
        if limited:
            signed = (self.sign_many or (lambda many: [self.sign(f) for f in many]))(
                [reply for *_, reply in limited]
            )
            limited = [(*item[:3], reply) for item, reply in zip(limited, signed, strict=True)]
        admitted = round_robin(admitted)
        slots = asyncio.Semaphore(ANSWERING)

        async def answer(
            entry_id: bytes, fields: dict[bytes, bytes], ev: CloudEvent, who: Principal
        ) -> tuple[bytes, dict[bytes, bytes], str, dict[str, str]] | None:
            async with slots, connection(self.pool) as conn:
                try:
                    with tracing.span(f"consume {ev.type}", parent=ev, service=self.source):
                        reply = await self.reply(conn, ev, who, out, denied)
                        tracing.stamp(reply)
                except Exception:
                    log.exception("query %s failed; left pending", entry_id.decode())
                    return None
            if ev.origin is not None:
                denied.append(self.outcome(ev, reply))
            return entry_id, fields, str(ev.replyto), self.sign(reply)

        answered = await asyncio.gather(*(answer(*a) for a in admitted))
        replies = [r for r in answered if r is not None] + limited
        if replies:
            await self.send(replies, out)
        if denied:  # refusals' audit records and lanes' outcomes: signed like all it writes
            pipe = self.redis.pipeline(transaction=False)
            records = (self.sign_many or (lambda many: [self.sign(f) for f in many]))(
                [record for _, record in denied]
            )
            for (stream, _), record in zip(denied, records, strict=True):
                pipe.xadd(stream, record)  # type: ignore[arg-type]
            await pipe.execute(raise_on_error=False)
        return out

    def outcome(self, ev: CloudEvent, reply: dict[str, str]) -> Emit:
        """The query's outcome on its lane: applied (the answer's type and id), or refused
        (a failed query, with its code and reason)."""
        assert ev.origin is not None
        if reply["type"] == QUERY_FAILED:
            data = json.loads(reply["data"])
            return self.lane_refused(
                ev.origin, str(data.get("code")), str(data.get("reason")), cause=ev
            )
        return lanes.applied(self.streams, self.source, ev.origin, events=[("", reply)], cause=ev)

    def lane_refused(
        self, origin: Origin, code: str, reason: str, *, cause: CloudEvent | None
    ) -> Emit:
        """The entry refused on its lane's outcome stream (an `Answer`, `cause` bound)."""
        return lanes.refused(
            self.streams, self.source, origin, code=code, reason=reason, cause=cause
        )

    async def reply(
        self,
        conn: asyncpg.Connection,
        ev: CloudEvent,
        who: Principal,
        out: Outcome,
        denied: list[Emit] | None = None,
    ) -> dict[str, str]:
        try:
            permit(who, ev.type)
            data = await self.answer(conn, ev)
        except DomainError as r:
            if isinstance(r, Rejected) and denied is not None:
                denied.extend(r.extra)  # e.g. the audit record of a query outside its scope
            out.rejected += 1
            return self.failure(ev, r)
        return new_event(QUERY_RESULT, self.source, data, subject=ev.subject, cause=ev)

    def failure(self, ev: CloudEvent, r: DomainError) -> dict[str, str]:
        failure = {"code": r.code, "reason": r.message, "query_type": ev.type, "query_id": ev.id}
        return new_event(QUERY_FAILED, self.source, failure, subject=ev.subject, cause=ev)

    async def send(
        self, replies: list[tuple[bytes, dict[bytes, bytes], str, dict[str, str]]], out: Outcome
    ) -> None:
        boxes = list({box for _, _, box, _ in replies})
        check = self.redis.pipeline(transaction=False)
        for box in boxes:
            check.exists(box)
        existed = dict(zip(boxes, await check.execute(), strict=True))
        pipe = self.redis.pipeline(transaction=False)
        for _, _, box, reply in replies:
            pipe.xadd(box, reply)  # type: ignore[arg-type]
        results = await pipe.execute(raise_on_error=False)
        made = [box for box in boxes if not existed[box]]  # created by our reply: ours to expire
        if made:
            expire = self.redis.pipeline(transaction=False)
            for box in made:
                expire.expire(box, self.reply_ttl)
            for box in self.beyond_cap(made):
                expire.delete(box)
            await expire.execute(raise_on_error=False)
        for (entry_id, fields, box, _), result in zip(replies, results, strict=True):
            if isinstance(result, Exception):  # e.g. `replyto` names a key that is not a stream
                out.dead.append((entry_id, fields, f"reply to '{box}' failed: {result}"))
            else:
                out.ack.append(entry_id)

    def beyond_cap(self, made: list[str]) -> list[str]:
        """Reply streams to delete: each client's oldest beyond `replies_per_client`. A reply
        stream is named under its client's namespace, so the name says whose it is."""
        gone: list[str] = []
        for box in made:
            owner = namespace_of(box)
            mine = self.made.setdefault(owner, OrderedDict())
            mine[box] = None
            while len(mine) > self.replies_per_client:
                gone.append(mine.popitem(last=False)[0])
        if len(self.made) > 10_000:  # only a memory of what this process made: bounded
            self.made.clear()
        return gone


def namespace_of(box: str) -> str:
    """`<prefix>alluse.reply.<client>` of a reply stream: a client's name holds no '.'
    (shared/contracts/trust.py escapes it), so the namespace ends at the next one."""
    head = box.find(REPLY_SPACE)
    end = box.find(".", head + len(REPLY_SPACE)) if head >= 0 else -1
    return box[:end] if end >= 0 else box


def round_robin(
    admitted: list[tuple[bytes, dict[bytes, bytes], CloudEvent, Principal]],
) -> list[tuple[bytes, dict[bytes, bytes], CloudEvent, Principal]]:
    """The batch's queries in turns across their clients, each client's in its own order:
    the first query of every client is answered before any client's second."""
    queues: dict[str, list[tuple[bytes, dict[bytes, bytes], CloudEvent, Principal]]] = {}
    for item in admitted:
        queues.setdefault(item[3].subject, []).append(item)
    turns = max((len(q) for q in queues.values()), default=0)
    return [q[i] for i in range(turns) for q in queues.values() if i < len(q)]
