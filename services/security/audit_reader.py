"""The audit stream's consumer: a small batch waits a moment for the entries behind it.

The account and integration services write one signed `alluse.audit.batch` per batch of their
own; at a paced rate each carries one to three records and arrives alone. Chaining it alone
cost the security service a whole batch's fixed work (its read, its transaction's round trips,
its acknowledgement, each a wake-up of the process) for those few records. Nothing waits on
the chain (no answer, no fill, depends on it), so a batch smaller than a full read waits
`linger` seconds and takes along, in one more read of the same group, what arrived meanwhile:
the records are chained as before, in the order read, each once, just later by that much. A
redelivered batch (the reclaimer's) does not wait.
"""

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from shared.infra.runtime.redisclient import streams_read
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.messaging import Entry

log = logging.getLogger(__name__)


class AuditConsumer(StreamConsumer):
    def __init__(self, *, linger: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.linger = linger

    async def handle(
        self, entries: Sequence[Entry], deliveries: Mapping[bytes, int] | None = None
    ) -> None:
        room = self.settings.batch_size - len(entries)
        if self.linger > 0 and not deliveries and room > 0:
            await asyncio.sleep(self.linger)
            entries = [*entries, *await self.more(room)]
        await super().handle(entries, deliveries)

    async def more(self, count: int) -> list[Entry]:
        """New entries for this consumer, without blocking. One this read took and then lost
        (its reply) stays pending in the group, and the reclaimer delivers it again."""
        try:
            got: Any = await self.redis.xreadgroup(
                self.group, self.settings.consumer, {self.stream: ">"}, count=count
            )
        except RedisError as exc:
            log.warning("reading more of %s failed (%s); chaining what was read", self.stream, exc)
            return []
        return [e for _, batch in streams_read(got) for e in batch]
