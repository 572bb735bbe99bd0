"""What every consumer does with a batch's Outcome, whatever way it reads its stream.

Both readers, a consumer group (consumer.py) and ordered partitions (partitions.py), hand a
batch to the pipeline and get an Outcome back; `Settling` turns it into the same decisions:

- applied or refused entries are removed (acknowledged, deleted);
- a failed entry counts one delivery; it is tried again after `retry_delay` until it has
  failed `max_deliveries` times, then dead-lettered with its last error;
- a dead letter is signed by the service, and an entry that came through a lane and was not
  answered yet gets its one outcome there too (`alluse.entry.refused`, code `dead_lettered`),
  also when it crashed every consumer it was delivered to, across restarts (the group's own
  delivery count, and the lane the router wrote on the entry);
- a held entry (the keys needed to check it cannot be had now) is no failed delivery: it is
  tried again after `HELD_SECONDS`, never dead-lettered for waiting;
- the metrics: consumed, rejected, dead-lettered, latency.

How an entry is removed or put back for later differs (XACK/XDEL and the reclaimer for a
group; XDEL and a partition's retry time for partitions): those are the two hooks.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.contracts.answers import DEAD_LETTERED
from shared.infra.runtime import metrics
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Answer, Entry, Outcome, dead_letter_fields
from shared.infra.trust.keys import RETRY_SECONDS
from shared.infra.trust.signing import EntrySigner

log = logging.getLogger(__name__)
Process = Callable[[Sequence[Entry]], Awaitable[Outcome]]
# The keys are looked up at most once a second (trust/keys.py): a held entry tried sooner
# would only be held again.
HELD_SECONDS = RETRY_SECONDS
HINTS_MAX = 10_000


@dataclass(frozen=True)
class Letter:
    """One entry to dead-letter: why, after how many deliveries, and who wrote it."""

    entry_id: bytes
    fields: dict[bytes, bytes]
    reason: str
    deliveries: int
    writer: str = ""
    refused_writer: bool = False
    answer: Answer | None = None  # its lane outcome, when no other was written for it


class Settling:
    """The settle / dead-letter / retry / metrics core both consumers share (module doc)."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        stream: str,
        process: Process,
        after: Callable[[], None],
    ) -> None:
        self.redis, self.settings, self.stream = redis, settings, stream
        # Called after a batch that committed outbox rows: the relay's wake-up (service.py).
        self.process, self.after = process, after
        self.dlq = f"{stream}.dlq"  # public: a slot of its own
        self.signer: EntrySigner | None = None  # signs dead letters and outcomes (running())
        self.clock: Callable[[], float] = time.monotonic  # when a retry is due; tests drive it
        # Entry id -> its verified writer and lane answer, kept for a dead letter written by
        # another pass (the reclaimer's): only a hint, bounded.
        self.hints: dict[bytes, tuple[str, Answer | None]] = {}
        # The lane answer of an entry no pass of this process has answered (one that crashed
        # its consumers, maybe before a restart), from the entry as its router moved it.
        self.answer_of: Callable[[dict[bytes, bytes]], Answer | None] = lambda _: None

    @property
    def retry_delay(self) -> float:
        """Seconds before a failed entry is delivered again."""
        return self.settings.reclaim_idle_ms / 1000

    async def settle(self, entry_ids: Sequence[bytes]) -> None:
        """Take settled entries off the stream for good (each one's outcome is committed)."""
        raise NotImplementedError

    async def later(self, entry_ids: Sequence[bytes], delay: float, *, counted: bool) -> None:
        """Deliver these entries again in `delay` seconds; `counted`: as one more delivery."""
        raise NotImplementedError

    async def handle_batch(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int]
    ) -> Outcome:
        """Process a batch and settle its outcome. `deliveries`: each entry's delivery count,
        this one included (1 when absent)."""
        started = time.perf_counter()
        outcome = await self.process(entries)
        fields = dict(entries)
        letters = [
            Letter(
                i,
                f,
                reason,
                deliveries.get(i, 1),
                outcome.writers.get(i, ""),
                i in outcome.refused_writer,
            )
            for i, f, reason in outcome.dead  # the pipeline answered these itself
        ]
        again: list[bytes] = []
        for entry_id, error in outcome.failed.items():
            tries = deliveries.get(entry_id, 1)
            writer, answer = outcome.writers.get(entry_id, ""), outcome.answers.get(entry_id)
            if tries >= self.settings.max_deliveries:
                reason = f"failed {tries} deliveries; last error: {error}"
                letters.append(
                    Letter(entry_id, fields[entry_id], reason, tries, writer, False, answer)
                )
                self.hints.pop(entry_id, None)
            else:
                again.append(entry_id)
                if len(self.hints) > HINTS_MAX:
                    self.hints.clear()
                self.hints[entry_id] = (writer, answer)
        await self.dead_letter(letters)
        if outcome.ack:
            await self.settle(outcome.ack)
            for entry_id in outcome.ack:
                self.hints.pop(entry_id, None)
        if again:
            await self.later(again, self.retry_delay, counted=True)
        if outcome.held:  # waiting for the keys is no failed delivery: never dead-lettered for it
            await self.later(outcome.held, HELD_SECONDS, counted=False)
        metrics.CONSUMED.labels(self.stream).inc(len(outcome.ack))
        metrics.REJECTED.labels(self.stream).inc(outcome.rejected)
        metrics.LATENCY.labels(self.stream).observe(time.perf_counter() - started)
        if outcome.outboxed:  # the relay publishes them now, not at the commits' notification
            self.after()
        return outcome

    async def dead_letter(self, letters: Sequence[Letter]) -> None:
        """Copy each entry to the DLQ, signed, and answer its lane; then remove it. Copied
        first: a crash in between dead-letters an entry twice, never loses it."""
        if not letters:
            return
        pipe = self.redis.pipeline(transaction=False)
        copies: list[int] = []  # where each DLQ XADD is among the pipeline's results
        for letter in letters:
            log.warning(
                "dead-lettered %s from %s: %s", letter.entry_id.decode(), self.stream, letter.reason
            )
            kept = dead_letter_fields(
                letter.fields,
                reason=letter.reason,
                stream=self.stream,
                entry_id=letter.entry_id,
                deliveries=letter.deliveries,
                writer=letter.writer,
                refused_writer=letter.refused_writer,
            )
            if self.signer is not None:  # a letter no service signed is never re-driven
                kept = self.signer.sign_letter(kept)
            copies.append(len(pipe))
            pipe.xadd(self.dlq, kept)  # type: ignore[arg-type]
            # Its writer learns it too, on its own lane, under the same signature as all the
            # service writes: an outcome not signed is believed by no client, so none is sent.
            if letter.answer is not None and self.signer is not None:
                stream, refusal = letter.answer(DEAD_LETTERED, letter.reason)
                pipe.xadd(stream, self.signer.sign(refusal))  # type: ignore[arg-type]
            metrics.DEAD.labels(self.stream).inc()
        # An outcome that cannot be written (its lane's stream broken by its own writer) must
        # not keep the entry on the stream; a copy that cannot be written must.
        results = await pipe.execute(raise_on_error=False)
        for i in copies:
            if isinstance(results[i], Exception):
                raise results[i]
        await self.settle([letter.entry_id for letter in letters])
