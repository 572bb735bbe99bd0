"""FastStream support: subscribe to the lifecycle stream safely, publish entries the platform takes.

Subscribing (verification, schema, de-duplication and the crash-safe recipe):

    app = FastStream(RedisBroker(redis_url))
    lifecycle = LifecycleSubscription(stream=Streams(prefix).key(LIFECYCLE), group="billing",
                                      consumer="billing-1", keys=KeySet.from_url(jwks_url),
                                      store=SqliteStore("seen.db"))

    @lifecycle.subscribe(app)
    async def handle(event: Event) -> None: ...

`subscribe(app)` adds a startup hook that creates the consumer group at id 0 before the broker
starts (FastStream would create it at `$`: entries written before the first start would never
be read), and two FastStream subscribers of that group: one reads new entries (`>`), the other
claims entries left idle past `claim_idle_ms` (XAUTOCLAIM: what a killed member, this one
included, had read and not acknowledged). FastStream acknowledges an entry after the handler
returned; when it raises, the entry stays pending and is claimed again. (FastStream alone,
`last_id="0"` re-reads only the pending entries after a restart and never new ones, and
`last_id=">"` strands what a kill -9 left pending.) Given a broker instead of an app, call
`await lifecycle.prepare()` before starting the broker.

Publishing: FastStream's own publisher wraps the payload in its envelope, which the platform
dead-letters; `publish_entry` XADDs the binary-mode fields through the broker's connection.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from redis.exceptions import ResponseError

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
        self._broker: RedisBroker | None = None

    async def prepare(self) -> None:
        """Create the consumer group at id 0 (MKSTREAM) unless it exists."""
        if self._broker is None:
            raise RuntimeError("subscribe() first")
        redis = await self._broker.connect()
        try:
            await redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def subscribe(self, target: FastStream | RedisBroker) -> Callable[[Handler], Handler]:
        """Register `handler(event)` for this group (two FastStream subscribers); given the
        app, also the startup hook that creates the group at 0."""
        if isinstance(target, RedisBroker):
            broker = target
        else:
            if not isinstance(target.broker, RedisBroker):
                raise TypeError("the FastStream app's broker must be a RedisBroker")
            broker = target.broker
            target.on_startup(self.prepare)
        self._broker = broker

        def register(handler: Handler) -> Handler:
            # One function per subscriber: FastStream wraps what it decorates.
            async def on_claimed(message: RedisStreamMessage) -> None:
                await self.process(message, handler)

            async def on_new(message: RedisStreamMessage) -> None:
                await self.process(message, handler)

            claimer = StreamSub(
                self.stream,
                group=self.group,
                consumer=self.consumer,
                min_idle_time=self.claim_idle_ms,
                polling_interval=self.polling_ms,
            )
            reader = StreamSub(
                self.stream,
                group=self.group,
                consumer=self.consumer,
                last_id=">",
                polling_interval=self.polling_ms,
            )
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
