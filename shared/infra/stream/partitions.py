"""Ordered consumption by N replicas: one stream split into P partitions by account.

Producers write to their lanes (shared/infra/stream/lanes.py), or, where lanes are open, to the one
public stream. The replica holding the router lease moves their entries, each source oldest
first, to partition `crc32(account) % P` with a new id (a writer's own id can neither block nor
reorder a partition), so every partition holds each writer's entries in its order. Each replica holds leases on a fair share of the
partitions and applies only those, one batch at a time, oldest first: one account's messages
are applied by one replica at a time, in the order they were written (docs/architecture.md "Scaling out").
On a Redis Cluster, every key here but the DLQ shares the public stream's slot (hash tag)."""

import asyncio
import contextlib
import json
import logging
import math
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from shared.infra.runtime import metrics
from shared.infra.runtime.redisclient import cluster, streams_read
from shared.infra.runtime.settings import Settings
from shared.infra.stream.lanes import Move, Registry, backoff
from shared.infra.stream.leases import Leases
from shared.infra.stream.messaging import Entry
from shared.infra.stream.retention import Retained
from shared.infra.stream.settle import Process, Settling

log = logging.getLogger(__name__)
SETTLE_MS = 100  # how often a replica short of its share looks for partitions given back


def account_of(fields: dict[bytes, bytes]) -> bytes:
    """What orders an entry: its subject, else its data's account_id, else nothing."""
    if subject := fields.get(b"subject"):
        return subject
    try:
        data = json.loads(fields.get(b"data", b""))
        return str(data.get("account_id", "")).encode() if isinstance(data, dict) else b""
    except Exception:  # e.g. too deep to decode: partition 0, where the pipeline dead-letters it
        return b""


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
        self.parts = [s.beside(stream, f".p{i}") for i in range(count)]
        self.lease_keys = [s.beside(stream, f".lease.p{i}") for i in range(count)]
        self.router_key = s.beside(stream, ".lease.router")
        self.members = s.beside(stream, ".members")
        self.leases = Leases(redis, settings.consumer, settings.partition_lease_ms)
        self.held: set[int] = set()
        self.routing = False
        self.tries: dict[bytes, int] = {}  # failed deliveries of an entry at a partition's head
        self.retry_at: dict[int, float] = {}  # a partition whose head failed waits till then
        self.where: dict[bytes, int] = {}  # the batch in hand: entry id -> its partition
        self.routed = asyncio.Event()  # this replica's router moved entries: look at once
        self.full = False  # the last read took as many as it asked of some partition
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
            sequence=s.beside(stream, ".pseq"),  # matched by the ACL's `.p*`
            signer=lambda: self.signer,
        )

    def retained(self) -> list[Retained]:
        return [Retained(self.dlq, self.settings.dlq_retention)]

    def partition(self, fields: dict[bytes, bytes]) -> int:
        return zlib.crc32(account_of(fields)) % len(self.parts)

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

    async def consume_once(self) -> bool:
        now = self.clock()
        ready = [p for p in sorted(self.held) if self.retry_at.get(p, 0) <= now]
        if not ready:
            return False
        for p in ready:  # a retry time passed is honoured by this read
            self.retry_at.pop(p, None)
        count = max(1, self.settings.batch_size // len(ready))
        where: dict[bytes, int] = {}
        entries: list[Entry] = []
        self.full = False
        for p, rows in await self.heads(ready, count):
            self.full = self.full or len(rows) >= count
            for entry_id, fields in rows:
                where[entry_id] = p
                entries.append((entry_id, fields))
        if not entries:
            return False
        await self.handle(entries, where)
        return True

    async def heads(self, ready: list[int], count: int) -> list[tuple[int, list[Entry]]]:
        """Up to `count` of the oldest entries of each partition in `ready` that has any. On one
        server, one XREAD of them all: the reply names only partitions with entries, where a
        batch read while most partitions are empty (a paced load's batches of a few entries)
        would otherwise send, and parse the answer of, an XRANGE per partition. A cluster
        client asks a node for an XREAD's keys first (a round trip more): there, the XRANGEs."""
        if cluster(self.redis) is None:
            got: Any = await self.redis.xread({self.parts[p]: "0-0" for p in ready}, count=count)
            index = {self.parts[p]: p for p in ready}
            return [(index[key], rows) for key, rows in streams_read(got)]
        pipe = self.redis.pipeline(transaction=False)
        for p in ready:
            pipe.xrange(self.parts[p], count=count)
        return list(zip(ready, await pipe.execute(), strict=True))

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
                elif await self.route_once(block_ms=wait):
                    self.routed.set()
                if self.mover.fenced_out:  # the lease passed: no longer told of every move
                    self.mover.fenced_out = self.routing = False
                    self.routed.set()
                failures = 0
            except Exception:
                self.routed.set()  # a move may have landed before the failure: look
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
                worked = False
                self.routed.clear()
                try:
                    if time.monotonic() >= next_renew:
                        settling = await self.renew()
                        next_renew = time.monotonic() + (SETTLE_MS / 1000 if settling else every)
                        await self.observe()
                    worked = await self.consume_once()
                except Exception:
                    log.exception("ordered consumption of %s failed; will try again", self.stream)
                # After a batch that emptied what it read, the lease holder reads again once
                # its own router moved more (`routed`, cleared before the read: no move is
                # missed; set too when a routing round failed or found the lease gone), not at
                # once to find nothing. Only the lease holder's router moves; had the lease
                # passed unnoticed, the wait's timeout looks, as when idle.
                if not worked or (self.routing and not self.full):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.pause()):
                            await self.routed.wait()
        finally:
            await asyncio.wait([router], timeout=(self.settings.block_ms / 1000) + 5)
            router.cancel()
            await self.leave()

    def pause(self) -> float:
        """Seconds to wait for the router before reading again: `block_ms`, or less when a held
        partition's retry time falls sooner (its head is read again then, not a wait later); none
        when one fell due since the last read."""
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
