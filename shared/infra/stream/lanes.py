"""Lanes (docs/lanes.md): each client writes only streams of its own, and the services fan
them in.

A lane L is one Redis user's: its entries for a logical stream S go to `<prefix>{<prefix>S}.lane.L`
(the hash tag keeps it in S's Redis Cluster slot, so one script moves them). The registry is
the Redis set `<prefix>alluse.lanes`, re-read every second; `console` and `operator` always
exist. A router moves each lane's entries, oldest first and in one atomic step per batch, into
S (or straight into S's partitions), with a new id and the field `lane` = L; any `lane` field
the writer put there is dropped. Whatever a writer does to its own lane stream (MAXLEN 0, an
id at the end of the id space) touches only that stream: the router never spins on it; an
entry it cannot move is dead-lettered with the reason, and a lane left exhausted is reset.

The outcome helpers below build the one outcome every lane entry gets, on
`<prefix>alluse.outcomes.<L>`: applied (with the events it caused), duplicate, or refused.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.asyncio import Redis

from shared.contracts.answers import ENTRY_APPLIED, ENTRY_DUPLICATE, ENTRY_REFUSED, UNDELIVERABLE
from shared.contracts.envelope import CloudEvent, new_event
from shared.contracts.lifecycle import SCHEMA_BASE, VERSION
from shared.contracts.streams import (
    CONSOLE_LANE,
    FIXED_LANES,
    OPERATOR_LANE,
    Streams,
    lane_name_ok,
)
from shared.contracts.trust import SOURCES
from shared.infra.runtime import metrics
from shared.infra.runtime.redisclient import streams_read
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.limits import Buckets
from shared.infra.stream.messaging import Answer, Emit, Entry, Rejected, dead_letter_fields
from shared.infra.trust.signing import EntrySigner

log = logging.getLogger(__name__)
REFRESH_SECONDS = 1.0  # how often the registry is re-read
# An id further ahead of the server's clock than this: the lane's writer jumped to the end of
# the id space, and its own later XADDs would fail; reset once drained.
FUTURE_MS = 24 * 3600 * 1000
BACKOFF_MAX = 5.0  # seconds between tries of a routing pass that keeps failing
FULL_WAIT = 0.005  # seconds a fair router waits for room in its target, or for a token
# A machine client's lane holds at most this many bursts of its queries waiting for tokens:
# its oldest beyond are moved anyway, and the service refuses them `rate_limited`.
WAITING_BURSTS = 4
OPERATOR_ROLES = frozenset({"operator", "admin"})
# The JSON Schema of a refusal (shared/contracts/schemas/outcomes/, docs.schema_uri).
REFUSED_SCHEMA = f"{SCHEMA_BASE.rsplit('/', 1)[0]}/outcomes/{ENTRY_REFUSED}/{VERSION}.json"


def read_sequence(key: str) -> str:
    """Lua reading the id sequence at `key` ("ms-seq", as MOVE and the partitions' DIRECT keep
    it) into `ms` and `seq`, which the script declared: a value that is not one leaves them as
    declared, and the next id starts again from the server's clock."""
    return f"""
local last = redis.call('GET', {key})
local dash = last and string.find(last, '-')
if dash then
  ms = tonumber(string.sub(last, 1, dash - 1)) or 0
  seq = tonumber(string.sub(last, dash + 1)) or -1
end
"""


# One batch of one source stream, moved atomically: each entry XADDed to its target with a new
# id (so no writer's id can block or reorder a target) minus any `lane` field, plus the lane's,
# then deleted from the source. KEYS: the fence, the source, the sequence, then the targets.
# ARGV[1]: the router lease's holder ('' = unfenced), ARGV[2]: the lane ('' = none), ARGV[3]:
# '1' to drop a `lane` field the writer set ('0' on a stream only services write, whose signed
# fields are moved as they are), ARGV[4]: '1' to take ids from one sequence (KEYS[3], "ms-seq")
# for all targets, so that no id is in two partitions (a replica keys its batch by entry id):
# the entry's own id when it is past the sequence and not ahead of the server's clock (so a
# dead letter names the id its writer got), else the next one; '0' for Redis's own (one
# target). ARGV[5]: the most entries a target may hold ('0': no bound): once it holds that
# many, the rest stay in their lane (atomic, so replicas' routers together keep the bound).
# Then (target index, id) pairs. Lua's unpack() has a bounded stack: an entry
# of over 3950 fields cannot be moved and is reported as a failure. Returns {moved, now, id,
# error, id, error, ...}: `now` the server's clock in ms when ids are sequenced or a lane is
# moved (else 0), for the caller's check of an exhausted lane without a round trip of its
# own; the entries whose XADD failed stay in place for the caller to dead-letter.
MOVE = (
    """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local ms, seq, now = 0, -1, 0
if ARGV[4] == '1' or ARGV[2] ~= '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local out = {0, now}
if ARGV[4] == '1' then
"""
    + read_sequence("KEYS[3]")
    + """
end
local cap = tonumber(ARGV[5])
for i = 6, #ARGV, 2 do
  local t, id = tonumber(ARGV[i]), ARGV[i + 1]
  if cap > 0 and redis.call('XLEN', KEYS[3 + t]) >= cap then break end
  local found = redis.call('XRANGE', KEYS[2], id, id)
  if #found == 1 then
    local fields, kept = found[1][2], {}
    for j = 1, #fields, 2 do
      if fields[j] ~= 'lane' or ARGV[3] == '0' then
        kept[#kept + 1] = fields[j]
        kept[#kept + 1] = fields[j + 1]
      end
    end
    if ARGV[2] ~= '' then
      kept[#kept + 1] = 'lane'
      kept[#kept + 1] = ARGV[2]
    end
    local added, new = nil, '*'
    if ARGV[4] == '1' then
      local dash = string.find(id, '-')
      local oms, oseq = tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
      if oms <= now and oseq < 1e12 and (oms > ms or (oms == ms and oseq > seq)) then
        ms, seq = oms, oseq  -- the writer's own id: in order, not ahead of the clock
      elseif now > ms then
        ms, seq = now, 0
      else
        seq = seq + 1
      end
      new = string.format('%d-%d', ms, seq)
    end
    if #kept > 7900 then
      added = {err = 'entry has too many fields to move'}
    else
      added = redis.pcall('XADD', KEYS[3 + t], new, unpack(kept))
    end
    if type(added) == 'table' and added.err then
      out[#out + 1] = id
      out[#out + 1] = added.err
    else
      redis.call('XDEL', KEYS[2], id)
      out[1] = out[1] + 1
    end
  end
end
if ARGV[4] == '1' and seq >= 0 then redis.call('SET', KEYS[3], string.format('%d-%d', ms, seq)) end
return out
"""
)
# A lane stream emptied by its router, whose writer left its last id at the end of the id
# space: deleted, so the writer's next XADD starts it afresh. Only when empty, atomically.
RESET = """
if redis.call('XLEN', KEYS[1]) == 0 then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Registry:
    """The lane names, re-read from `<prefix>alluse.lanes` at most every REFRESH_SECONDS."""

    redis: Redis
    streams: Streams
    every: float = REFRESH_SECONDS
    _names: tuple[str, ...] = FIXED_LANES
    _read_at: float = -1e9

    async def names(self) -> tuple[str, ...]:
        now = time.monotonic()
        if now - self._read_at >= self.every:
            self._read_at = now
            try:
                members = await self.redis.smembers(self.streams.lanes)
            except Exception as exc:  # the last known lanes keep being served
                log.warning("lane registry unreadable: %s", exc)
                return self._names
            found = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
            self._names = tuple(sorted({*FIXED_LANES, *(n for n in found if lane_name_ok(n))}))
        return self._names


def bind(lane: str, subject: str, role: str, lanes: Collection[str]) -> None:
    """Refuse a principal that does not belong to the lane its entry came through. A machine
    client's token names it (its subject is its client id, its lane's name); any other subject
    is a human user's, who writes through the console's lane or, as an operator or admin,
    through the operators' lane. `lanes`: the registered lane names."""
    human = subject not in lanes
    if lane == OPERATOR_LANE:
        if human and role in OPERATOR_ROLES:
            return
        raise Rejected("forbidden", "the operator lane takes only operators' and admins' tokens")
    if lane == CONSOLE_LANE:
        if human:
            return
        raise Rejected("forbidden", "the console lane takes only users' tokens")
    if subject != lane:
        raise Rejected("forbidden", f"lane '{lane}' takes only client '{lane}''s tokens")


def unlaned(mode: str, stream: str) -> None:
    """An entry written straight to the shared stream: refused unless lanes are open."""
    if mode != "open":
        raise Rejected(
            "forbidden",
            f"write to your lane: {{{stream}}}.lane.<your lane>, not {stream} (docs/lanes.md)",
        )


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """An entry as its writer sent it: which lane, logical stream, type, source and id."""

    lane: str
    stream: str  # the logical stream's contract name (no prefix, no lane)
    type: str
    source: str
    id: str
    subject: str | None = None

    def ref(self) -> dict[str, str]:
        return {"stream": self.stream, "type": self.type, "source": self.source, "id": self.id}

    def carried(self) -> dict[str, str]:
        """What an effect carries of its upstream entry, signed with it (`origin_of`)."""
        return {"lane": self.lane, "originstream": self.stream, "origintype": self.type}


@dataclass(frozen=True)
class LaneOutcomes:
    """Which outcomes a pipeline writes: of the logical stream `stream`'s lane entries.
    `carried`: the entries are effects naming their upstream entry (signed fields);
    `delegated`: types whose outcome, once applied here, the account service writes."""

    streams: Streams
    stream: str
    carried: bool = False
    delegated: frozenset[str] = frozenset()


def _text(fields: dict[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def origin_of(
    fields: dict[bytes, bytes], ev: CloudEvent | None, stream: str, *, carried: bool = False
) -> Origin | None:
    """The entry's origin, if it came through a lane. `carried`: an effect signed by the
    integration service, which names the upstream entry's stream and type itself."""
    lane = _text(fields, b"lane")
    if not lane or not lane_name_ok(lane):
        return None
    if carried:
        stream = _text(fields, b"originstream") or stream
    type_ = (_text(fields, b"origintype") if carried else None) or (
        ev.type if ev is not None else (_text(fields, b"type") or "")
    )
    source = ev.source if ev is not None else (_text(fields, b"source") or "")
    id_ = ev.id if ev is not None else (_text(fields, b"id") or "")
    subject = ev.subject if ev is not None else None
    return Origin(lane, stream, type_[:200], source[:500], id_[:200], subject)


def outcome(
    streams: Streams,
    service: str,
    origin: Origin,
    *,
    type_: str,
    extra: dict[str, Any],
    cause: CloudEvent | None,
) -> Emit:
    metrics.OUTCOMES.labels(type_).inc()
    attrs = {} if cause is not None else {"causationid": origin.id or "unknown"}
    fields = new_event(
        type_, service, {**origin.ref(), **extra}, subject=origin.subject, cause=cause, **attrs
    )
    fields["causationid"] = origin.id or fields.get("causationid", "unknown")
    return (streams.outcomes(origin.lane), fields)


def applied(
    streams: Streams, service: str, origin: Origin, *, events: Sequence[Emit], cause: CloudEvent
) -> Emit:
    caused = [{"type": f["type"], "id": f["id"]} for _, f in events]
    return outcome(
        streams, service, origin, type_=ENTRY_APPLIED, extra={"events": caused}, cause=cause
    )


def duplicate(
    streams: Streams,
    service: str,
    origin: Origin,
    *,
    events: Sequence[Emit],
    cause: CloudEvent,
    of_entry: tuple[str, str] | None = None,
) -> Emit:
    """Of the applied entry with the same key, or `of_entry` (source, id) when another entry
    applied it; its events again (published once more)."""
    caused = [{"type": f["type"], "id": f["id"]} for _, f in events]
    source, id_ = of_entry or (origin.source, origin.id)
    of = {"source": source, "id": id_}
    extra = {"of": of, "events": caused}
    return outcome(streams, service, origin, type_=ENTRY_DUPLICATE, extra=extra, cause=cause)


def refused(
    streams: Streams,
    service: str,
    origin: Origin,
    *,
    code: str,
    reason: str,
    cause: CloudEvent | None,
) -> Emit:
    data = {"code": code, "reason": reason[:2000], "dataschema": REFUSED_SCHEMA}
    return outcome(streams, service, origin, type_=ENTRY_REFUSED, extra=data, cause=cause)


def source_of(service: str) -> str:
    """The CloudEvents source a service's entries carry (`SOURCES`, read the other way)."""
    return next((s for s, owner in SOURCES.items() if owner == service), f"alluse/{service}")


# --- the routers ---------------------------------------------------------------------------


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


@dataclass
class Move:
    """Moves the entries of a logical stream's lanes (and of the stream itself, for a
    partitioned one) to their targets. `target(fields)` picks a target index (1-based);
    `fence`: the router lease key and holder, or None."""

    redis: Redis
    streams: Streams
    name: str  # the logical stream's contract name
    targets: list[str]
    target: Callable[[dict[bytes, bytes]], int]
    registry: Registry | None  # None: a stream without lanes (internal effects)
    dlq: str
    batch: int
    fence: tuple[str, str] | None = None
    public: bool = False  # also move the shared stream's own entries (a partitioned stream)
    sequence: str | None = None  # one id sequence for all targets (partitions), its key
    # The service's signer of dead letters, once running (Partitioned/StreamConsumer.signer).
    signer: Callable[[], EntrySigner | None] = lambda: None
    # Fairness (docs/scopes.md, "Limits"), for a router into one consumer-group stream whose
    # consumer deletes what it has answered: `fair` moves one batch per round in all, shared
    # in turns across the lanes that have entries (from a rotating first lane), and only
    # while the target holds less than a batch; a flood waits in its own lane, not in front
    # of the others. `buckets`: each machine client's rate, taken before its entries leave
    # its lane (the console's and operators' lanes carry many users: their rates are checked
    # per user by the service).
    fair: bool = False
    buckets: Buckets | None = None
    cost: Callable[[dict[bytes, bytes]], float] = lambda _: 1.0  # of an entry, in tokens
    # A waiting entry older than this (by its id) is moved anyway, like one beyond its lane's
    # cap (WAITING_BURSTS): the wait is bounded (0: by the cap only).
    wait_ms: int = 0
    _turn: int = 0
    # A move found the router lease held by another; whoever routes with it clears it on seeing.
    fenced_out: bool = False

    async def once(self, block_ms: int | None) -> int:
        if self.fair:
            return await self.in_turns(block_ms)
        sources = await self.sources()
        got: Any = await self.redis.xread(
            dict.fromkeys(sources, "0-0"), count=self.batch, block=block_ms
        )
        moved = 0
        for source, rows in streams_read(got):
            moved += await self.move(source, sources.get(source, ""), rows)
        return moved

    async def in_turns(self, block_ms: int | None) -> int:
        """One round of a fair router (`fair`): what room the target has, shared in turns."""
        room = self.batch - int(await self.redis.xlen(self.targets[0]))
        if room <= 0:  # a batch waits in the target: the rest stays in the lanes
            await asyncio.sleep(FULL_WAIT)
            return 0
        sources = await self.sources()  # a lane out of tokens too: its wait is bounded
        got: Any = await self.redis.xread(dict.fromkeys(sources, "0-0"), count=room, block=block_ms)
        found = sorted(streams_read(got), key=lambda pair: sources.get(pair[0], ""))
        self._turn += 1  # the first lane served rotates from round to round
        first = self._turn % max(1, len(found))
        paid = {k: self.admitted(sources.get(k, ""), rows) for k, rows in found}
        due = await self.overdue({k: rows for k, rows in found if paid[k] < len(rows)})
        queues = [(k, rows[: max(paid[k], due.get(k, 0))]) for k, rows in found]
        queues = queues[first:] + queues[:first]
        moved = 0
        for (key, rows), n in zip(queues, shares([len(r) for _, r in queues], room), strict=True):
            if n:
                lane = sources.get(key, "")
                done = await self.move(key, lane, rows[:n], cap=self.batch)
                took = rows[: min(done, paid[key])]  # those moved anyway are not paid for
                if took and self.limited(lane) and self.buckets is not None:
                    self.buckets.take(lane, sum(self.cost(f) for _, f in took))
                moved += done
        if not moved and got:
            await asyncio.sleep(FULL_WAIT)  # the room was taken by another replica meanwhile
        return moved

    def limited(self, lane: str) -> bool:
        """A machine client's lane, under its client's rate."""
        return self.buckets is not None and bool(lane) and lane not in FIXED_LANES

    def admitted(self, lane: str, rows: list[Entry]) -> int:
        """How many of the lane's oldest `rows` its client's bucket pays for now."""
        left = self.buckets.left(lane) if self.buckets and self.limited(lane) else None
        if left is None or self.buckets is None:
            return len(rows)
        for n, (_, fields) in enumerate(rows):
            left -= min(self.cost(fields), float(self.buckets.burst))
            if left < 0:
                return n
        return len(rows)

    async def overdue(self, held: dict[str, list[Entry]]) -> dict[str, int]:
        """How many of each held-back lane's oldest entries (`held`: its key -> those read)
        are moved anyway: those beyond WAITING_BURSTS of its client's burst, and those that
        have waited longer than `wait_ms`. The service refuses them `rate_limited` at once
        (its own bucket is as empty), so the lane stays bounded in length and in age."""
        if not held or self.buckets is None:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for key in held:
            pipe.xlen(key)
        (seconds, micros), *lengths = await pipe.execute()
        now = int(seconds) * 1000 + int(micros) // 1000
        cap = WAITING_BURSTS * self.buckets.burst
        due: dict[str, int] = {}
        for (key, rows), length in zip(held.items(), lengths, strict=True):
            aged = sum(1 for i, _ in rows if now - _ms(i) > self.wait_ms) if self.wait_ms else 0
            due[key] = max(int(length) - cap, aged)
        return due

    async def sources(self) -> dict[str, str]:
        """Stream key -> lane ('' for the shared stream)."""
        lanes = await self.registry.names() if self.registry is not None else ()
        found = {self.streams.lane(self.name, lane): lane for lane in lanes}
        if self.public:
            found[self.streams.key(self.name)] = ""
        return found

    async def move(self, source: str, lane: str, rows: list[Entry], *, cap: int = 0) -> int:
        if not rows:
            return 0
        strip = "1" if self.registry is not None else "0"
        ordered = "1" if self.sequence else "0"
        args: list[Any] = [self.fence[1] if self.fence else "", lane, strip, ordered, cap]
        for entry_id, fields in rows:
            args += [self.target(fields), entry_id]
        fence = self.fence[0] if self.fence else source
        keys = [fence, source, self.sequence or source, *self.targets]
        result = await self.redis.eval(MOVE, len(keys), *keys, *args)
        moved = int(result[0])
        if moved < 0:  # the router lease passed to another replica
            self.fenced_out = True
            return 0
        failures = dict(zip(result[2::2], result[3::2], strict=True))
        if failures:
            await self.dead_letter(source, lane, rows, failures)
        # By the server's clock, read by the move itself (no round trip of its own).
        exhausted = lane and _ms(rows[-1][0]) > int(result[1]) + FUTURE_MS
        if exhausted and int(await self.redis.eval(RESET, 1, source)):
            metrics.LANE_RESETS.labels(source).inc()
            log.warning(
                "lane stream %s reset: its writer left its last id at the end of the id"
                " space (%s); its entries were routed",
                source,
                rows[-1][0].decode(),
            )
        return moved

    async def dead_letter(
        self, source: str, lane: str, rows: list[Entry], failures: dict[bytes, bytes]
    ) -> None:
        """An entry that cannot be moved goes to the DLQ with why, never retried in a loop,
        and its lane gets its outcome: refused, `undeliverable`."""
        letters = self.redis.pipeline(transaction=False)
        copies: list[int] = []  # where each DLQ XADD is among the pipeline's results
        for entry_id, fields in rows:
            if entry_id not in failures:
                continue
            error = failures[entry_id]
            reason = f"could not be routed: {error.decode(errors='replace')}"[:500]
            log.warning("dead-lettered %s from %s: %s", entry_id.decode(), source, reason)
            letter = dead_letter_fields(
                fields, reason=reason, stream=source, entry_id=entry_id, deliveries=1
            )
            signer = self.signer()
            if signer is not None:  # a letter no service signed is never re-driven
                letter = signer.sign_letter(letter)
            copies.append(len(letters))
            letters.xadd(self.dlq, letter)  # type: ignore[arg-type]
            # Its writer learns it on its own lane, signed like all the service writes (the
            # entry's own `lane` field, if any, is the writer's word: the lane read is ours).
            as_routed = {**fields, b"lane": lane.encode()}
            if lane and signer is not None and (o := origin_of(as_routed, None, self.name)):
                stream, answer = refused(
                    self.streams,
                    source_of(signer.service),
                    o,
                    code=UNDELIVERABLE,
                    reason=reason,
                    cause=None,
                )
                letters.xadd(stream, signer.sign(answer))  # type: ignore[arg-type]
            metrics.DEAD.labels(source).inc()
        # An outcome that cannot be written must not keep the entry in its lane; a copy must.
        results = await letters.execute(raise_on_error=False)
        for i in copies:
            if isinstance(results[i], Exception):
                raise results[i]
        await self.redis.xdel(source, *failures)


def shares(sizes: Sequence[int], room: int) -> list[int]:
    """How many entries to take of each queue (of `sizes`), `room` in all, in turns: every
    queue's first before any queue's second."""
    taken = [0] * len(sizes)
    while room > 0 and any(t < n for t, n in zip(taken, sizes, strict=True)):
        for i, n in enumerate(sizes):
            if room > 0 and taken[i] < n:
                taken[i] += 1
                room -= 1
    return taken


async def backoff(failures: int, base_ms: int) -> None:
    """After a failed pass: wait longer each time (up to BACKOFF_MAX): never a hot loop."""
    await asyncio.sleep(min(BACKOFF_MAX, base_ms / 1000 * (2 ** min(failures, 10))))


@dataclass
class LaneRouter:
    """Fans a consumer-group stream's lanes into it (queries, WS2, WS4): every replica may run
    one, since each batch moves atomically and only entries still in the lane are moved.
    `heal`: called every refresh, e.g. to recreate the consumer group of a deleted stream."""

    move: Move
    block_ms: int
    heal: Callable[[], Awaitable[None]] | None = None
    stopped: bool = False

    async def run(self) -> None:
        failures, healed_at = 0, 0.0
        while not self.stopped:
            try:
                if self.heal is not None and time.monotonic() - healed_at >= REFRESH_SECONDS:
                    healed_at = time.monotonic()
                    await self.heal()
                await self.move.once(self.block_ms)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                metrics.ROUTE_FAILURES.labels(self.move.name).inc()
                log.exception("routing of %s's lanes failed; will try again", self.move.name)
                await backoff(failures, self.block_ms)


def lane_router(
    redis: Redis,
    settings: Settings,
    name: str,
    consumer: StreamConsumer,
    *,
    buckets: Buckets | None = None,
    cost: Callable[[dict[bytes, bytes]], float] = lambda _: 1.0,
) -> LaneRouter:
    """Fans the lanes of a consumer-group stream into it; recreates its group if the stream
    was deleted under it (with a warning), so consumption resumes by itself. Where the
    consumer deletes what it has answered (queries; not the upstream streams, kept by age),
    the lanes share each batch fairly (Move.fair);
    `buckets`: each machine client's rate, taken in its lane, `cost` tokens an entry."""
    s = settings.streams
    move = Move(
        redis,
        s,
        name,
        [s.key(name)],
        lambda _: 1,
        Registry(redis, s),
        consumer.dlq,
        settings.batch_size,
        signer=lambda: consumer.signer,
        fair=consumer.delete_applied,
        buckets=buckets if consumer.delete_applied else None,
        cost=cost,
        wait_ms=settings.reply_ttl_seconds * 1000,  # its answer's reply stream lasts as long
    )
    consumer.answer_of = partial(crashed, s, name, consumer)
    return LaneRouter(move, settings.block_ms, heal=consumer.heal)


def crashed(
    streams: Streams, name: str, consumer: StreamConsumer, fields: dict[bytes, bytes]
) -> Answer | None:
    """The lane answer of an entry of `name` dead-lettered with no answer of this process
    (it crashed its consumers): refused on the lane its router wrote on it, signed like all
    the service writes (so none without the service's signer)."""
    origin, signer = origin_of(fields, None, name), consumer.signer
    if origin is None or signer is None:
        return None
    service = source_of(signer.service)

    def answer(code: str, reason: str) -> Emit:
        return refused(streams, service, origin, code=code, reason=reason, cause=None)

    return answer
