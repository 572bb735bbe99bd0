"""A consumer group on one stream: batches via FastStream, manual ack, DLQ and reclaim."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Annotated, Any, cast

from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.infra.runtime import metrics
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Entry, Outcome, dead_letter_fields
from shared.infra.stream.retention import Retained
from shared.infra.trust.signing import EntrySigner

log = logging.getLogger(__name__)
_SETTLE = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
if ARGV[2] == '1' then redis.call('XDEL', KEYS[1], unpack(ARGV, 3)) end
"""
Process = Callable[[Sequence[Entry]], Awaitable[Outcome]]


async def _raw_batch(msg: Any) -> RedisBatchStreamMessage:
    """Hand the entries to the handler as they are: public entries are CloudEvents, not FastStream's format."""
    return RedisBatchStreamMessage(raw_message=msg, body=b"", consumer=FAKE_CONSUMER, group=None)


class StreamConsumer:
    def __init__(
        self,
        *,
        redis: Redis,
        settings: Settings,
        stream: str,
        group: str,
        process: Process,
        after: Callable[[], None] = lambda: None,
        delete_applied: bool = False,
        retention: timedelta | None = None,
    ) -> None:
        """`delete_applied`: an entry of a stream the platform owns (it may hold a token) is
        deleted with its acknowledgement. `retention`: a stream others own is trimmed by age."""
        self.redis, self.settings, self.stream, self.group = redis, settings, stream, group
        self.process, self.after = process, after
        self.delete_applied, self.retention = delete_applied, retention
        self.errors: dict[bytes, str] = {}  # entry id -> its last error here, for its dead letter
        self.writers: dict[bytes, str] = {}  # entry id -> its verified writer, for its dead letter
        self.signer: EntrySigner | None = None  # signs the dead letters (set by running())
        self.dlq = f"{stream}.dlq"
        self.stopped = False
        self.reader: asyncio.Task[None] | None = None  # after its group was recreated (heal)

    async def ensure_group(self) -> bool:
        """Create the group at the stream's beginning, so nothing written before start is
        missed. True if it was created (it did not exist)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    async def heal(self) -> None:
        """Recreate the group if its stream was deleted under it, and read it from then on
        here: FastStream stops a subscriber whose group is gone. Consumption resumes."""
        if await self.ensure_group():
            log.warning("stream %s had lost its group %s: recreated", self.stream, self.group)
            metrics.STREAM_RESETS.labels(self.stream).inc()
            if self.reader is None or self.reader.done():
                self.reader = asyncio.create_task(self.read_forever(), name=f"read {self.stream}")

    async def read_forever(self) -> None:
        """What the subscriber did, for a group recreated under a running service."""
        while not self.stopped:
            try:
                got: Any = await self.redis.xreadgroup(
                    self.group,
                    self.settings.consumer,
                    {self.stream: ">"},
                    count=self.settings.batch_size,
                    block=self.settings.block_ms,
                )
                for _, entries in got or []:
                    await self.handle(entries)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading %s failed; will try again", self.stream)
                await asyncio.sleep(self.settings.reclaim_idle_ms / 1000)

    def register(self, broker: RedisBroker) -> None:
        sub = StreamSub(
            self.stream,
            group=self.group,
            consumer=self.settings.consumer,
            batch=True,
            max_records=self.settings.batch_size,
            polling_interval=self.settings.block_ms,
            last_id=">",  # the group exists already (ensure_group), so read new entries
        )

        @broker.subscriber(stream=sub, parser=_raw_batch, ack_policy=AckPolicy.MANUAL)
        async def on_batch(message: Annotated[RedisBatchStreamMessage, Context("message")]) -> None:
            raw = message.raw_message
            await self.handle(list(zip(raw["message_ids"], raw["data"], strict=True)))

    async def handle(self, entries: Sequence[Entry], deliveries: int = 1) -> None:
        started = time.perf_counter()
        outcome = await self.process(entries)
        if len(self.errors) > 10_000:  # only a hint for the dead letter: never grows unbounded
            self.errors.clear()
            self.writers.clear()
        self.errors.update(outcome.failed)
        self.writers.update((i, outcome.writers[i]) for i in outcome.failed if i in outcome.writers)
        for entry_id, fields, reason in outcome.dead:
            writer = outcome.writers.get(entry_id, "")
            refused = entry_id in outcome.refused_writer
            await self.dead_letter(entry_id, fields, reason, deliveries, writer, refused)
        if outcome.ack:
            await self.settle(outcome.ack)
        if outcome.held:  # waiting for the keys is no failed delivery: never dead-lettered for it
            await self.redis.xclaim(
                self.stream,
                self.group,
                self.settings.consumer,
                0,
                outcome.held,  # type: ignore[arg-type]
                retrycount=0,
                justid=True,
            )
        metrics.CONSUMED.labels(self.stream).inc(len(outcome.ack))
        metrics.REJECTED.labels(self.stream).inc(outcome.rejected)
        metrics.LATENCY.labels(self.stream).observe(time.perf_counter() - started)
        self.after()

    async def dead_letter(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        reason: str,
        deliveries: int,
        writer: str = "",
        refused_writer: bool = False,
    ) -> None:
        log.warning("dead-lettered %s from %s: %s", entry_id.decode(), self.stream, reason)
        dl = dead_letter_fields(
            fields,
            reason=reason,
            stream=self.stream,
            entry_id=entry_id,
            deliveries=deliveries,
            writer=writer,
            refused_writer=refused_writer,
        )
        if self.signer is not None:  # a letter no service signed is never re-driven
            dl = self.signer.sign_letter(dl)
        # Two steps, each on one key (a Redis Cluster refuses a MULTI across slots): the copy
        # first, so a crash in between dead-letters the entry twice, never loses it.
        await self.redis.xadd(self.dlq, dl)  # type: ignore[arg-type]
        await self.settle([entry_id])
        metrics.DEAD.labels(self.stream).inc()

    async def settle(self, entry_ids: Sequence[bytes]) -> None:
        """Acknowledge entries whose outcome is committed (and delete them) in one step."""
        # One script, so a crash never leaves an entry acknowledged but kept (with its token);
        # it names one key, so it is one step on a Redis Cluster too.
        await self.redis.eval(
            _SETTLE, 1, self.stream, self.group, int(self.delete_applied), *entry_ids
        )

    def retained(self) -> list[Retained]:
        """What the janitor trims for this consumer: its DLQ, and its stream when kept by age."""
        kept = [Retained(self.dlq, self.settings.dlq_retention)]
        if self.retention is not None:
            kept.append(Retained(self.stream, self.retention, frozenset({self.group})))
        return kept

    async def reclaim_once(self) -> int:
        """Take over entries a dead consumer left pending; give up on those tried too often."""
        pending = await self.redis.xpending_range(
            self.stream, self.group, min="-", max="+", count=100, idle=self.settings.reclaim_idle_ms
        )
        if not pending:
            return 0
        ids = [cast(bytes, p["message_id"]) for p in pending]
        tries = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        claimed: list[tuple[bytes, dict[bytes, bytes] | None]] = await self.redis.xclaim(  # type: ignore[assignment]
            self.stream,
            self.group,
            self.settings.consumer,
            self.settings.reclaim_idle_ms,
            ids,  # type: ignore[arg-type]
        )
        retry: list[Entry] = []
        for entry_id, fields in claimed:
            if fields is None:  # deleted from the stream meanwhile: nothing left to apply
                await self.redis.xack(self.stream, self.group, entry_id)
            elif tries[entry_id] >= self.settings.max_deliveries:
                last = self.errors.pop(entry_id, "see the service log")
                reason = f"failed {tries[entry_id]} deliveries; last error: {last}"
                writer = self.writers.pop(entry_id, "")
                await self.dead_letter(entry_id, fields, reason, tries[entry_id], writer)
            else:
                retry.append((entry_id, fields))
        if retry:
            await self.handle(retry, deliveries=max(tries[i] for i, _ in retry) + 1)
        return len(claimed)

    async def observe(self) -> None:
        """Fill the pending and lag gauges from the group's own counters (XINFO GROUPS)."""
        for info in await self.redis.xinfo_groups(self.stream):
            name = info["name"]
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                metrics.PENDING.labels(self.stream).set(info["pending"])
                if info.get("lag") is not None:  # None when Redis cannot tell (after XDEL)
                    metrics.LAG.labels(self.stream).set(info["lag"])
        metrics.DLQ_DEPTH.labels(self.stream).set(await self.redis.xlen(self.dlq))

    async def reclaim_forever(self) -> None:
        interval = self.settings.reclaim_idle_ms / 2000
        while not self.stopped:
            await asyncio.sleep(interval)
            try:
                await self.reclaim_once()
                await self.observe()
            except Exception:
                log.exception("reclaim of %s failed; will try again", self.stream)
