"""Drive a command stream and time each command from its XADD to its outcome event."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from redis.asyncio import Redis

from services.bench.report import Result
from shared.contracts.messages import COMMAND_REJECTED

Fields = dict[str, str]
Entry = tuple[bytes, dict[bytes, bytes]]
ReadReply = list[tuple[bytes, list[Entry]]] | None  # what XREAD / XREADGROUP answer
REJECTED = COMMAND_REJECTED.encode()


def command(type_: str, data: dict[str, Any], *, bearer: str, subject: str | None = None) -> Fields:
    """A command as any producer writes it: CloudEvents 1.0, binary mode, one field each."""
    fields = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "bench/producer",
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "authorization": bearer,
    }
    if subject:
        fields["subject"] = subject
    fields["data"] = json.dumps(data)
    return fields


class Collector:
    """Reads an events stream (XREAD BLOCK) and notes when each awaited command's outcome arrives."""

    def __init__(self, redis: Redis, stream: str) -> None:
        self.redis, self.stream = redis, stream
        self.last_id = b"0-0"
        self.sent: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.subjects: dict[str, str] = {}  # command id -> subject of its outcome (the account)
        self.rejected: dict[str, str] = {}  # command id -> rejection code
        self._waiting: set[str] = set()
        self._all_in = asyncio.Event()
        self.stopping = False

    async def run(self) -> None:
        while not self.stopping:
            reply = await self.redis.xread({self.stream: self.last_id}, count=2000, block=200)
            got = cast(ReadReply, reply)  # redis-py gives this shape on RESP2 and RESP3
            seen = time.perf_counter()
            for _, entries in got or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    self._note(fields, seen)
            if not self._waiting:
                self._all_in.set()

    def _note(self, fields: dict[bytes, bytes], seen: float) -> None:
        cause = fields.get(b"causationid")
        if cause is None:
            return
        cid = cause.decode()
        if cid not in self._waiting:
            return  # a second event of one command, or one from before this phase
        self._waiting.discard(cid)
        self.done[cid] = seen
        if fields.get(b"subject"):
            self.subjects[cid] = fields[b"subject"].decode()
        if fields.get(b"type") == REJECTED:
            self.rejected[cid] = json.loads(fields[b"data"]).get("code", "?")

    def expect(self, ids: Sequence[str]) -> None:
        self._waiting.update(ids)
        self._all_in.clear()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._all_in.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{len(self._waiting)} outcomes missing after {timeout:.0f}s on {self.stream}"
            ) from None

    def result(self, name: str, ids: Sequence[str], offered: float | None = None) -> Result:
        first = min(self.sent[i] for i in ids)
        last = max(self.done[i] for i in ids)
        return Result(
            name=name,
            count=len(ids),
            seconds=last - first,
            latencies_ms=[(self.done[i] - self.sent[i]) * 1000 for i in ids],
            rejected=sum(1 for i in ids if i in self.rejected),
            offered_per_s=offered,
        )


@contextlib.asynccontextmanager
async def collecting(redis: Redis, stream: str) -> AsyncIterator[Collector]:
    collector = Collector(redis, stream)
    task = asyncio.create_task(collector.run(), name=f"collect {stream}")
    try:
        yield collector
    finally:
        await stop(collector, task)


class Stoppable(Protocol):
    stopping: bool


async def stop(loop: Stoppable, task: "asyncio.Task[None]") -> None:
    """Let a reading loop finish its current blocking read; cancel only if it does not.

    (Cancelling a task blocked in redis-py's XREAD could hang the bench at times.)
    """
    loop.stopping = True
    done, _ = await asyncio.wait([task], timeout=5)
    if not done:
        task.cancel()
        await asyncio.wait([task], timeout=5)


async def _send(redis: Redis, stream: str, batch: Sequence[Fields], collector: Collector) -> None:
    pipe = redis.pipeline(transaction=False)
    for fields in batch:
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    sent = time.perf_counter()
    await pipe.execute()
    for fields in batch:
        collector.sent[fields["id"]] = sent


async def burst(
    redis: Redis, stream: str, commands: Sequence[Fields], collector: Collector, *, chunk: int = 250
) -> list[str]:
    """XADD every command as fast as one producer can (pipelined), then await every outcome."""
    ids = [c["id"] for c in commands]
    collector.expect(ids)
    for start in range(0, len(commands), chunk):
        await _send(redis, stream, commands[start : start + chunk], collector)
    await collector.wait(timeout=max(60.0, len(ids) / 100))
    return ids


async def paced(
    redis: Redis, stream: str, commands: Sequence[Fields], collector: Collector, *, rate: float
) -> list[str]:
    """XADD the commands at `rate` per second, each at its due time, then await every outcome."""
    ids = [c["id"] for c in commands]
    collector.expect(ids)
    start = time.perf_counter()
    sent = 0
    while sent < len(commands):
        due = min(len(commands), int((time.perf_counter() - start) * rate) + 1)
        if due > sent:
            await _send(redis, stream, commands[sent:due], collector)
            sent = due
        wait = start + sent / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
    await collector.wait(timeout=60.0)
    return ids
