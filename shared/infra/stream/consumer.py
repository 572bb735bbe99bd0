"""A consumer group on one stream: batches via FastStream, manual ack, DLQ and reclaim."""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.infra.runtime import metrics
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Entry
from shared.infra.stream.retention import Retained
from shared.infra.stream.settle import Letter, Process, Settling

log = logging.getLogger(__name__)
_SETTLE = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
if ARGV[2] == '1' then redis.call('XDEL', KEYS[1], unpack(ARGV, 3)) end
"""


async def _raw_batch(msg: Any) -> RedisBatchStreamMessage:
    """Hand the entries to the handler as they are: public entries are CloudEvents, not FastStream's format."""
    return RedisBatchStreamMessage(raw_message=msg, body=b"", consumer=FAKE_CONSUMER, group=None)


async def _entries(message: RedisBatchStreamMessage) -> list[Entry]:
    """The handler's argument: the batch's (entry id, fields), as read. A coroutine, so
    FastStream awaits it on the loop (a plain function would be run in a worker thread)."""
    raw = message.raw_message
    return list(zip(raw["message_ids"], raw["data"], strict=True))


class StreamConsumer(Settling):
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
        super().__init__(redis, settings, stream, process, after)
        self.group = group
        self.delete_applied, self.retention = delete_applied, retention
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

        # The broker injects nothing (apply_types=False, service.py): the handler is called
        # with what `_entries` decoded, on the loop; no dependency is resolved per batch.
        @broker.subscriber(
            stream=sub, parser=_raw_batch, decoder=_entries, ack_policy=AckPolicy.MANUAL
        )
        async def on_batch(entries: list[Entry]) -> None:
            await self.handle(entries)

    async def handle(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int] | None = None
    ) -> None:
        await self.handle_batch(entries, deliveries or {})

    async def settle(self, entry_ids: Sequence[bytes]) -> None:
        """Acknowledge entries whose outcome is committed (and delete them) in one step."""
        # One script, so a crash never leaves an entry acknowledged but kept (with its token);
        # it names one key, so it is one step on a Redis Cluster too.
        await self.redis.eval(
            _SETTLE, 1, self.stream, self.group, int(self.delete_applied), *entry_ids
        )

    async def later(self, entry_ids: Sequence[bytes], delay: float, *, counted: bool) -> None:
        """A failed entry stays pending: the reclaimer delivers it again once idle long enough,
        and the group counts that delivery. A held one is claimed back with its count reset
        and an idle time that makes it due `delay` seconds from now."""
        if counted:
            return
        await self.redis.xclaim(
            self.stream,
            self.group,
            self.settings.consumer,
            0,
            entry_ids,  # type: ignore[arg-type]
            idle=max(0, self.settings.reclaim_idle_ms - int(delay * 1000)),
            retrycount=0,
            justid=True,
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
        letters: list[Letter] = []
        for entry_id, fields in claimed:
            if fields is None:  # deleted from the stream meanwhile: nothing left to apply
                await self.redis.xack(self.stream, self.group, entry_id)
            elif tries[entry_id] >= self.settings.max_deliveries:
                # Delivered that often without an outcome: its consumers died on it. (One that
                # failed with an error was dead-lettered by its last delivery.) The count is the
                # group's, so it holds across restarts; so does its lane's answer.
                writer, answer = self.hints.pop(entry_id, ("", None))
                answer = answer or self.answer_of(fields)
                reason = f"failed {tries[entry_id]} deliveries; last error: see the service log"
                letters.append(
                    Letter(entry_id, fields, reason, tries[entry_id], writer, False, answer)
                )
            else:
                retry.append((entry_id, fields))
        await self.dead_letter(letters)
        if retry:  # XCLAIM counted this delivery
            await self.handle(retry, {i: tries[i] + 1 for i, _ in retry})
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
