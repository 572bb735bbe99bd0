"""Fills, assignments and expirations to the account service, without the inbox and outbox.

Their effect is the upstream entry re-typed (handlers.effect): same source and id, the engine
as its writer, the week type of its business day. The account service applies it once (its
inbox on (writer, source, id), its claims on the fill, assignment or expiration id) and writes
the entry's outcome on the engine's lane. So the inbox row, the transaction, the outbox row
and the relay's round cost a forwarded entry nothing it needs: each entry is checked by the
pipeline's own guard and payload model, the batch's reads made in one statement, writing
nothing (whether the outbox waits, which keys the inbox knows, the week types of its days),
its effects written in one round trip, signed, straight into the account service's partitions
of the effects stream (each to its account's, as the account service's router would move it),
or, while entries wait on the public effects stream to be routed, behind them on it (so none
is overtaken), their fsync confirmed with WAITAOF as the relay confirms one (direct.py), and
only then acknowledged:
a crash before the acknowledgement forwards the same effect again, which the account service
answers as a duplicate.

Everything else goes through the pipeline as before, which refuses, dead-letters, holds,
records or replays it: an entry the guard or the payload model refuses (its refusal, lane
outcome and audit record as ever; but one the guard refuses only after proving its writer, a
token since expired or revoked, is forwarded with that refusal, signed, for the account
service to answer as the duplicate of the entry its key applied, or to refuse), one whose key the inbox already knows, a re-driven dead
letter, and an entry that could not be written or confirmed. A batch that also carries entries
with effects of the pipeline's (a valuation, a quote), and every batch while the outbox still
holds unconfirmed events or while Redis cannot confirm durability, goes through the pipeline
whole: an effect written here never overtakes one of the same stream waiting in the outbox.
Never a lapsed entry, though: the pipeline would refuse it (lapsed()), so where it cannot go
straight (Redis cannot confirm durability, or its effect could not be written) it is left
pending, to go straight on a later delivery.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from services.integration import store
from services.integration.direct import write_placed
from services.integration.handlers import business_day, effect, tagged
from shared.contracts.envelope import LIMITS, CloudEvent, Limits, decode
from shared.contracts.trust import LAPSED_CODE, LAPSED_REASON
from shared.contracts.upstream import Upstream
from shared.infra.runtime import metrics, tracing
from shared.infra.stream import lanes
from shared.infra.stream.durability import Durability
from shared.infra.stream.messaging import Entry, Guard, Outcome, Rejected
from shared.infra.stream.partitions import Placement
from shared.infra.stream.pipeline import Route, payload
from shared.infra.stream.settle import Process
from shared.infra.trust.scopes import SCOPE_FIELD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plain:
    """An entry the pipeline would forward: guarded, its payload read."""

    entry_id: bytes
    raw: dict[bytes, bytes]
    ev: CloudEvent
    model: Upstream
    day: date | None  # whose week type tags its effect (handlers.business_day), if any
    lapsed: Rejected | None = None  # refused for its writer, who is proven (a lapsed token)


class Forwarder:
    def __init__(
        self,
        *,
        redis: Redis,
        pool: asyncpg.Pool,
        guard: Guard,
        routes: Mapping[str, Route],
        stream: str,
        effects: Placement,
        sign: Callable[[list[dict[str, str]]], list[dict[str, str]]],
        durability: Durability,
        source: str,
        otherwise: Process,
        heard: Callable[[str], None] = lambda _source: None,
        limits: Limits = LIMITS,
    ) -> None:
        """`routes`: the types forwarded here, as the pipeline's table has them; `stream`: the
        upstream stream's contract name (its lanes' outcomes name it); `effects`: the effects
        stream's partitions, as the account service has them; `guard`: the pipeline's
        beneath its check of re-driven dead letters, as every entry with a `dlq_` field goes
        to the pipeline (forwardable), which checks it."""
        self.redis, self.pool, self.guard, self.routes = redis, pool, guard, routes
        self.stream, self.effects, self.sign = stream, effects, sign
        self.durability, self.source, self.heard = durability, source, heard
        self.otherwise, self.limits = otherwise, limits  # the pipeline, for everything else

    async def process(self, entries: Sequence[Entry]) -> Outcome:
        read = [await self.forwardable(entry_id, raw) for entry_id, raw in entries]
        plain = [p for p in read if isinstance(p, Plain)]
        if not await self.durability.ready(self.redis):
            # The pipeline's outbox keeps their effects until Redis can confirm; but a lapsed
            # entry waits here, pending (the pipeline would refuse it: lapsed() below).
            return await self.leaving(entries, lapsed(plain), "Redis cannot confirm durability")
        # An entry with an effect of the pipeline's own (a quote, a valuation): the pipeline
        # takes the batch, but for its lapsed entries (lapsed() below).
        whole = any(found is False for found in read)
        if whole:
            plain = lapsed(plain)
        weeks: dict[date, str | None] = {}
        if plain:  # one read: whether the outbox waits, which keys it knows, the week types
            days = {p.day for p in plain if p.day is not None}
            seen = await store.forwarding(self.pool, events=[p.ev for p in plain], days=[*days])
            if not whole and seen.waiting:
                plain = lapsed(plain)  # never overtake an event waiting in the outbox
            plain = [p for p in plain if p.ev.key not in seen.known]  # the pipeline replays them
            weeks = seen.weeks
        if plain:
            for source in {p.ev.source for p in plain}:
                self.heard(source)
            try:
                await self.publish([self.effect(p, weeks) for p in plain])
            except Exception as exc:  # not confirmed: the pipeline forwards them (same effects)
                log.warning("forwarding %d entries failed: %s", len(plain), exc)
                waiting = lapsed(plain)  # but a lapsed one is left pending (lapsed() below)
                return await self.leaving(entries, waiting, f"forwarding failed: {exc}"[:500])
        straight = {p.entry_id for p in plain}
        others = [(entry_id, raw) for entry_id, raw in entries if entry_id not in straight]
        out = await self.otherwise(others) if others else Outcome()
        out.ack.extend(p.entry_id for p in plain)
        out.emitted += len(plain)
        return out

    async def leaving(self, entries: Sequence[Entry], waiting: list[Plain], why: str) -> Outcome:
        """The pipeline's outcome of the batch but `waiting`, which is left pending: delivered
        again, and forwarded straight once Redis confirms; dead-lettered, with no answer on
        its lane, after as many failed deliveries as any entry."""
        left = {p.entry_id for p in waiting}
        rest = [(entry_id, raw) for entry_id, raw in entries if entry_id not in left]
        out = await self.otherwise(rest) if rest else Outcome()
        out.failed.update(dict.fromkeys(left, why))
        return out

    async def forwardable(self, entry_id: bytes, raw: dict[bytes, bytes]) -> Plain | bool:
        """The entry, guarded and read, if the pipeline would forward it and nothing else;
        True if it is of a type forwarded here but refused (the pipeline refuses it); False
        for anything else."""
        if any(k.startswith(b"dlq_") for k in raw):  # a re-driven dead letter, or a fake one
            return False
        try:
            ev = decode(raw, self.limits)
        except Exception:
            return False
        route = self.routes.get(ev.type)
        if route is None:
            return False
        lapsed = None
        try:
            try:
                await self.guard(ev, raw)
            except Rejected as r:
                # Its writer proven (a genuine token since expired, say): forwarded with its
                # refusal, for the account service, whose inbox knows whether its key was
                # applied, to answer it as a duplicate or refuse it (docs/lanes.md).
                if not ev.writer:
                    raise
                lapsed = r
            ev.came_from(lanes.origin_of(raw, ev, self.stream))
            model = payload(route.model, ev, subject_is_account=False)
        except Exception:  # refused, or keys unavailable: the pipeline says which
            return True
        day = business_day(ev, model) if tagged(model) else None
        return Plain(entry_id, raw, ev, model, day, lapsed)

    def effect(self, p: Plain, weeks: Mapping[date, str | None]) -> dict[str, str]:
        week = weeks.get(p.day) if p.day is not None else None
        with tracing.span(
            f"consume {p.ev.type}", parent=p.ev, kind=SpanKind.CONSUMER, service=self.source
        ):
            with tracing.span(f"handle {p.ev.type}"):
                fields = effect(p.ev, p.model, week)
                if p.lapsed is not None:  # and a scope of no portfolio: never applied anywhere
                    fields |= {LAPSED_CODE: p.lapsed.code, LAPSED_REASON: p.lapsed.reason}
                    fields[SCOPE_FIELD] = ""  # (an account service unaware of it refuses it)
            tracing.stamp(fields)
        return fields

    async def publish(self, effects: list[dict[str, str]]) -> None:
        if await write_placed(self.redis, self.durability, self.effects, self.sign(effects)):
            metrics.PLACED.labels(self.effects.stream).inc(len(effects))


def lapsed(plain: list[Plain]) -> list[Plain]:
    """What goes straight even when the pipeline takes a batch: entries refused after their
    writer was proven (a token since expired). Their effect applies nothing (the account
    service answers it as the duplicate of the entry its key applied, or refuses it), so it
    overtakes nothing; and the pipeline, whose inbox does not know the keys forwarded here,
    would refuse a redelivery of an entry that applied: one that cannot go straight is left
    pending (Forwarder.leaving), never handed to the pipeline."""
    return [p for p in plain if p.lapsed is not None]
