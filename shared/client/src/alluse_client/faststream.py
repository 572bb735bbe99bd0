"""FastStream support: subscribe to the lifecycle stream safely, publish entries the platform takes.

Subscribing (verification, schema, de-duplication and the crash-safe recipe):

    broker = RedisBroker(redis_url)
    consumer = LifecycleSubscription(stream=Streams(prefix).key(LIFECYCLE), group="billing",
                                     consumer="billing-1", keys=KeySet.from_url(jwks_url),
                                     store=SqliteStore("seen.db"))

    @consumer.subscribe(broker)
    async def handle(event: Event) -> None: ...

It registers two FastStream subscribers of one consumer group: one claims entries left idle
past `claim_idle_ms` (XAUTOCLAIM: what a killed member, this one included, had read and not
acknowledged), registered first with `last_id="0"` so that the group is created at 0 and the
stream's earlier entries are read; the other reads new entries (`>`). FastStream acknowledges
an entry after the handler returned; when it raises the entry stays pending and is claimed
again. (FastStream alone, `last_id="0"` re-reads only the pending entries after a restart and
never new ones, and `last_id=">"` strands what a kill -9 left pending.)

Publishing: FastStream's own publisher wraps the payload in its envelope, which the platform
dead-letters; `publish_entry` XADDs the binary-mode fields through the broker's connection.
"""

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage

from alluse_client.consumer import INTEGRATION, Event, Handler, Inspector, Invalid
from alluse_client.dedupe import DedupeStore, MemoryStore
from alluse_client.keys import KeySet
from alluse_client.schemas import SchemaSet
from alluse_client.signatures import text_fields

__all__ = ["Event", "LifecycleSubscription", "publish_entry"]
log = logging.getLogger(__name__)


async def publish_entry(broker: RedisBroker, key: str, fields: dict[str, str]) -> str:
    """XADD binary-mode CloudEvent `fields` (see `binary_fields`) to stream `key`."""
    redis = await broker.connect()
    entry_id: Any = await redis.xadd(key, fields)  # type: ignore[arg-type]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


@dataclass
class LifecycleSubscription:
    stream: str
    group: str
    consumer: str
    keys: KeySet | None
    store: DedupeStore = field(default_factory=MemoryStore)
    schemas: SchemaSet | None = None
    signed_by: str = INTEGRATION
    claim_idle_ms: int = 60_000
    polling_ms: int = 500
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (entry id, why), last 100

    def __post_init__(self) -> None:
        self.inspector = Inspector(self.keys, self.schemas, self.signed_by)

    def subscribe(self, broker: RedisBroker) -> Callable[[Handler], Handler]:
        """Register `handler(event)` on `broker` for this group (two FastStream subscribers)."""

        def register(handler: Handler) -> Handler:
            # One function per subscriber: FastStream wraps what it decorates.
            async def on_claimed(message: RedisStreamMessage) -> None:
                await self.process(message, handler)

            async def on_new(message: RedisStreamMessage) -> None:
                await self.process(message, handler)

            with warnings.catch_warnings():  # last_id "0" with polling: the claimer polls by design
                warnings.simplefilter("ignore", RuntimeWarning)
                claimer = StreamSub(
                    self.stream, group=self.group, consumer=self.consumer, last_id="0",
                    min_idle_time=self.claim_idle_ms, polling_interval=self.polling_ms,
                )  # fmt: skip
            reader = StreamSub(
                self.stream, group=self.group, consumer=self.consumer, last_id=">",
                polling_interval=self.polling_ms,
            )  # fmt: skip
            broker.subscriber(stream=claimer)(on_claimed)
            broker.subscriber(stream=reader)(on_new)
            return handler

        return register

    async def process(self, message: Any, handler: Handler) -> None:
        """Verify, validate and de-duplicate one entry, then call the handler; returning lets
        FastStream acknowledge it, raising leaves it pending."""
        raw = message.raw_message
        entry_id = raw["message_ids"][0]
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        fields = raw["data"]
        if not fields:
            return  # deleted while pending: acknowledge
        try:
            event = await self.inspector.inspect(entry_id, fields)
        except Invalid as exc:
            self.invalid = [*self.invalid[-99:], (entry_id, str(exc))]
            log.warning("entry %s (%s) skipped: %s", entry_id, text_fields(fields).get("type"), exc)
            return
        if await self.store.seen(event.source, event.id):
            return
        await handler(event)
        await self.store.mark(event.source, event.id)
