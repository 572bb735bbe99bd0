"""Ordered consumption by N replicas: one stream split into P partitions by account.

Producers write to their lanes (shared/infra/stream/lanes.py), or, where lanes are open, to the one
public stream. The replica holding the router lease moves their entries, each source oldest
first, to partition `crc32(account) % P` with a new id (a writer's own id can neither block nor
reorder a partition), so every partition holds each writer's entries in its order. A service
may also write straight into the partitions (`DIRECT`, the integration service's effects) when
nothing waits on the public stream, with ids from the same sequence: a service trusted that
far (its Redis user may XADD to them) could block a partition with an id of its own, which the
one sequence then refuses to follow (docs/security.md). Each replica holds leases
on a fair share of the partitions and applies only those, one batch at a time, oldest first:
one account's messages are applied by one replica at a time, in the order they were written
(docs/architecture.md "Scaling out"); it waits for more with a blocking read of its
partitions, whoever writes them. On a Redis Cluster, every key here but the DLQ shares the
public stream's slot (hash tag)."""

import asyncio
import json
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.contracts.streams import Streams
from shared.infra.runtime import metrics
from shared.infra.runtime.redisclient import cluster, streams_read
from shared.infra.runtime.settings import Settings
from shared.infra.stream.lanes import Move, Registry, backoff, read_sequence
from shared.infra.stream.leases import Leases
from shared.infra.stream.messaging import Entry
from shared.infra.stream.retention import Retained
from shared.infra.stream.settle import Process, Settling

log = logging.getLogger(__name__)
SETTLE_MS = 100  # how often a replica short of its share looks for partitions given back


def account_of(fields: Mapping[bytes, bytes]) -> bytes:
    """What orders an entry: its subject, else its data's account_id, else nothing."""
    if subject := fields.get(b"subject"):
        return subject
    try:
        data = json.loads(fields.get(b"data", b""))
        return str(data.get("account_id", "")).encode() if isinstance(data, dict) else b""
    except Exception:  # e.g. too deep to decode: partition 0, where the pipeline dead-letters it
        return b""


@dataclass(frozen=True)
class Placement:
    """Where a partitioned stream's entries go: its partitions and their one id sequence
    (the router's and every direct writer's), all in the public stream's slot."""

    stream: str  # the public stream's key
    parts: tuple[str, ...]
    sequence: str
    # How many partitions its readers have, as they last said (`Partitioned.renew`): a direct
    # writer that counts otherwise writes to the public stream, whose router places entries
    # as the readers count, never into a partition nobody reads.
    count_key: str

    @classmethod
    def of(cls, streams: Streams, stream: str, count: int) -> "Placement":
        """`count`: ALLUSE_PARTITIONS, the same value in every service that reads or writes
        them (a writer's own is checked against the readers', DIRECT)."""
        parts = tuple(streams.beside(stream, f".p{i}") for i in range(count))
        return cls(  # the ACL's `.pseq` and `.pcount`
            stream, parts, streams.beside(stream, ".pseq"), streams.beside(stream, ".pcount")
        )

    def partition(self, fields: Mapping[bytes, bytes]) -> int:
        """The one partition an entry belongs to: by its account (`account_of`)."""
        return zlib.crc32(account_of(fields)) % len(self.parts)


# Entries written straight into a partitioned stream's partitions, atomically, unless something
# waits on its public stream to be routed: then all are appended there, behind it, so none
# overtakes it; likewise when the readers count partitions otherwise than the writer (or have
# not said: none ran yet, or an older version), for the router to place them as the readers
# count. KEYS: the public stream, the sequence, the readers' count, then the partitions. ARGV:
# the writer's count, then per entry its partition (1-based), its number of field names and
# values n, then those n. In a
# partition, an entry gets the next id of the sequence the router's MOVE uses (lanes.py), so no
# id is in two partitions and ids keep their order; its fields are as given (the router adds
# none to a stream without lanes). Writing stops at the first XADD that fails. Returns
# {1 if into the partitions else 0, entries written, error of the first not written, if any}.
DIRECT = (
    """
local direct = redis.call('XLEN', KEYS[1]) == 0 and redis.call('GET', KEYS[3]) == ARGV[1]
local ms, seq, now = 0, -1, 0
if direct then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
    + read_sequence("KEYS[2]")
    + """
end
local written, i, failed = 0, 2, nil
while i <= #ARGV do
  local t, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local key, id = KEYS[1], '*'
  if direct then
    if now > ms then ms, seq = now, 0 else seq = seq + 1 end
    key, id = KEYS[3 + t], string.format('%d-%d', ms, seq)
  end
  local added
  if n > 7900 then
    added = {err = 'entry has too many fields to write'}
  else
    added = redis.pcall('XADD', key, id, unpack(ARGV, i + 2, i + 1 + n))
  end
  if type(added) == 'table' and added.err then
    failed = added.err
    break
  end
  written = written + 1
  i = i + 2 + n
end
if direct and written > 0 then redis.call('SET', KEYS[2], string.format('%d-%d', ms, seq)) end
if failed then return {direct and 1 or 0, written, failed} end
return {direct and 1 or 0, written}
"""
)


class Partitioned(Settling):
    """Routes and consumes one logical stream; `run()` until `stopped`."""

    def __init__(
        self,
        *,
        redis: Redis,
        settings: Settings,
        stream: str,
        process: Process,
        after: Callable[[], None] = lambda: None,
        laned: bool = False,
    ) -> None:
        """`laned`: clients' lanes of the stream are fanned in too (commands); not effects."""
        super().__init__(redis, settings, stream, process, after)
        registry = Registry(redis, settings.streams) if laned else None
        s, count = settings.streams, settings.partitions  # keys in the public stream's slot
        self.placement = Placement.of(s, stream, count)
        self.parts = list(self.placement.parts)
        self.lease_keys = [s.beside(stream, f".lease.p{i}") for i in range(count)]
        self.router_key = s.beside(stream, ".lease.router")
        self.members = s.beside(stream, ".members")
        self.leases = Leases(redis, settings.consumer, settings.partition_lease_ms)
        self.held: set[int] = set()
        self.routing = False
        self.tries: dict[bytes, int] = {}  # failed deliveries of an entry at a partition's head
        self.retry_at: dict[int, float] = {}  # a partition whose head failed waits till then
        self.where: dict[bytes, int] = {}  # the batch in hand: entry id -> its partition
        self.alive = 0  # replicas seen at the last renewal
        # After the replicas change, a replica short of its share renews every SETTLE_MS for
        # this long: about two renewals of the others, which give back their extra partitions.
        self.settle_seconds = 2 * settings.partition_lease_ms / 3000
        self.settling_until = 0.0
        self.stopped = False
        self.mover = Move(
            redis,
            s,
            stream.removeprefix(s.prefix),
            self.parts,
            lambda f: self.partition(f) + 1,
            registry,
            self.dlq,
            settings.batch_size,
            fence=(self.router_key, settings.consumer),
            public=True,
            sequence=self.placement.sequence,
            signer=lambda: self.signer,
        )

    def retained(self) -> list[Retained]:
        return [Retained(self.dlq, self.settings.dlq_retention)]

    def partition(self, fields: dict[bytes, bytes]) -> int:
        return self.placement.partition(fields)

    async def renew(self) -> bool:
        """Hold the router lease if free, and a fair share of the partitions; free the rest.

        True while this replica holds less than its share shortly after the replicas changed:
        the partitions another gives back are then taken at once, not a renewal later.
        """
        before = set(self.held)
        mine = sorted(self.held)  # renewed with the router lease in one round trip
        alive, got = await self.leases.hold_many(
            [self.router_key, *(self.lease_keys[p] for p in mine)], self.members
        )
        share = math.ceil(len(self.parts) / max(1, alive))
        self.routing = got[0]
        if self.routing:  # how many partitions there are, for the direct writers (DIRECT)
            await self.redis.set(self.placement.count_key, len(self.parts))
        self.held = {p for p, ok in zip(mine, got[1:], strict=True) if ok}
        start = zlib.crc32(self.settings.consumer.encode()) % len(self.parts)
        for p in sorted(range(len(self.parts)), key=lambda i: (i - start) % len(self.parts)):
            if len(self.held) >= share:
                break
            if p not in before and await self.leases.hold(self.lease_keys[p]):
                self.held.add(p)
        for p in sorted(self.held)[share:]:  # more than a fair share: give the extra back
            self.held.discard(p)
            await self.leases.release(self.lease_keys[p])
        now = time.monotonic()
        if alive != self.alive or self.held != before:
            self.alive, self.settling_until = alive, now + self.settle_seconds
        return len(self.held) < share and now < self.settling_until

    async def route_once(self, block_ms: int | None = None) -> bool:
        """Move the oldest entries of the stream and its lanes (waiting up to `block_ms` for
        one): everything left on them is unrouted, since a moved entry is deleted there."""
        return await self.mover.once(block_ms) > 0

    async def consume_once(self, wait: float = 0.0) -> bool:
        """Read a batch of the held partitions whose retry time has come, and apply it.
        `wait`: seconds to wait for an entry when they hold none (a blocking read, woken by
        whoever writes them: this replica's router, another's, or a direct writer)."""
        now = self.clock()
        ready = [p for p in sorted(self.held) if self.retry_at.get(p, 0) <= now]
        if not ready:
            if wait > 0:
                await asyncio.sleep(wait)
            return False
        for p in ready:  # a retry time passed is honoured by this read
            self.retry_at.pop(p, None)
        count = max(1, self.settings.batch_size // len(ready))
        where: dict[bytes, int] = {}
        entries: list[Entry] = []
        for p, rows in await self.heads(ready, count, wait):
            for entry_id, fields in rows:
                where[entry_id] = p
                entries.append((entry_id, fields))
        if not entries:
            return False
        await self.handle(entries, where)
        return True

    async def heads(
        self, ready: list[int], count: int, wait: float = 0.0
    ) -> list[tuple[int, list[Entry]]]:
        """Up to `count` of the oldest entries of each partition in `ready` that has any,
        waiting up to `wait` seconds for one when none has any. On one server, one XREAD of
        them all: the reply names only partitions with entries, where a batch read while most
        partitions are empty (a paced load's batches of a few entries) would otherwise send,
        and parse the answer of, an XRANGE per partition. A cluster client asks a node for an
        XREAD's keys first (a round trip more): there, the XRANGEs, and only when they found
        nothing the blocking XREAD (the partitions share one slot)."""
        block = math.ceil(wait * 1000) or None  # BLOCK 0 would wait for ever
        if cluster(self.redis) is not None:
            pipe = self.redis.pipeline(transaction=False)
            for p in ready:
                pipe.xrange(self.parts[p], count=count)
            found = list(zip(ready, await pipe.execute(), strict=True))
            if block is None or any(rows for _, rows in found):
                return found
        keys: Any = {self.parts[p]: "0-0" for p in ready}
        got: Any = await self.redis.xread(keys, count=count, block=block)
        index = {self.parts[p]: p for p in ready}
        return [(index[key], rows) for key, rows in streams_read(got)]

    async def handle(self, entries: Sequence[Entry], where: dict[bytes, int]) -> None:
        self.where = where
        await self.handle_batch(entries, {i: self.tries.get(i, 0) + 1 for i, _ in entries})

    async def settle(self, entry_ids: Sequence[bytes]) -> None:
        # One XDEL per partition, for all of its settled entries (a batch is read from one):
        # one left undone by a crash leaves entries the inbox knows.
        by_part: dict[int, list[bytes]] = {}
        for entry_id in entry_ids:
            by_part.setdefault(self.where[entry_id], []).append(entry_id)
            self.tries.pop(entry_id, None)
        pipe = self.redis.pipeline(transaction=False)
        for p, ids in by_part.items():
            pipe.xdel(self.parts[p], *ids)
        await pipe.execute()

    async def later(self, entry_ids: Sequence[bytes], delay: float, *, counted: bool) -> None:
        """Left at its partition's head, which is read again only after `delay`: the rest of
        the partition waits behind it, in order."""
        due = self.clock() + delay
        for entry_id in entry_ids:
            if counted:
                self.tries[entry_id] = self.tries.get(entry_id, 0) + 1
            p = self.where[entry_id]
            self.retry_at[p] = max(self.retry_at.get(p, 0.0), due)

    async def observe(self) -> None:
        """The gauges: per partition, entries waiting and the age of the oldest; for the
        public stream, entries not yet routed (lag) and routed but not applied (pending)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.xlen(self.stream)
        pipe.xlen(self.dlq)
        for part in self.parts:
            pipe.xlen(part)
            pipe.xrange(part, count=1)
        (seconds, micros), unrouted, dead, *per_part = await pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        waiting = 0
        for p, (length, head) in enumerate(zip(per_part[::2], per_part[1::2], strict=True)):
            # A routed entry's id is when it was routed: its age is how long it has waited.
            age = max(0, now_ms - int(head[0][0].split(b"-")[0])) / 1000 if head else 0.0
            metrics.PARTITION_PENDING.labels(self.stream, str(p)).set(length)
            metrics.PARTITION_LAG.labels(self.stream, str(p)).set(age)
            waiting += length
        metrics.LAG.labels(self.stream).set(unrouted)
        metrics.PENDING.labels(self.stream).set(waiting)
        metrics.DLQ_DEPTH.labels(self.stream).set(dead)

    async def route_forever(self) -> None:
        """While this replica holds the router lease, move entries as they arrive (a blocking
        read), beside its own batches: no replica waits for the router's batch to end."""
        wait, failures = self.settings.block_ms, 0
        while not self.stopped:
            try:
                if not self.routing:
                    await asyncio.sleep(wait / 1000)
                else:
                    await self.route_once(block_ms=wait)
                if self.mover.fenced_out:  # the lease passed: routing waits for a renewal
                    self.mover.fenced_out = self.routing = False
                failures = 0
            except Exception:
                failures += 1
                metrics.ROUTE_FAILURES.labels(self.stream).inc()
                log.exception("routing of %s failed; will try again", self.stream)
                await backoff(failures, wait)

    async def run(self) -> None:
        every = self.settings.partition_lease_ms / 3000
        next_renew = 0.0
        router = asyncio.create_task(self.route_forever(), name=f"route {self.stream}")
        try:
            while not self.stopped:
                try:
                    if time.monotonic() >= next_renew:
                        settling = await self.renew()
                        next_renew = time.monotonic() + (SETTLE_MS / 1000 if settling else every)
                        await self.observe()
                    # A read that finds its partitions empty waits on them (at most until a
                    # held partition's retry or the next renewal falls due), so an entry is
                    # read as soon as it is written, by whichever router or writer.
                    await self.consume_once(
                        max(0.0, min(self.pause(), next_renew - time.monotonic()))
                    )
                except Exception:
                    log.exception("ordered consumption of %s failed; will try again", self.stream)
                    await asyncio.sleep(self.pause())  # never a hot loop on a failing read
        finally:
            await asyncio.wait([router], timeout=(self.settings.block_ms / 1000) + 5)
            router.cancel()
            await self.leave()

    def pause(self) -> float:
        """Seconds a read of the partitions waits for an entry: `block_ms`, or less when a
        held partition's retry time falls sooner (its head is read again then, not a wait
        later); none when one fell due since the last read."""
        now = self.clock()
        due = [t - now for p, t in self.retry_at.items() if p in self.held]
        return max(0.0, min([self.settings.block_ms / 1000, *due]))

    async def leave(self) -> None:
        """Give every lease back at once, so the other replicas take over without waiting."""
        try:
            for key in [self.router_key, *(self.lease_keys[p] for p in self.held)]:
                await self.leases.release(key)
            await self.leases.leave(self.members)
        except Exception:
            log.warning("leases of %s left to expire", self.stream)
        self.held.clear()
