"""Whether Redis can confirm that what the relay published survives a Redis crash.

The relay deletes an outbox row only once its event is durable (README "Durability"):
- Redis >= 7.2 (and Valkey) with AOF on: WAITAOF 1 0 after the XADDs, on the same connection,
  answers once the local AOF has fsynced them.
- Redis < 7.2 with AOF on and `appendfsync always`: the server fsyncs before it replies, so the
  XADD's reply is the confirmation.
- Anything else cannot confirm: when durability is required, rows are kept and retried, and
  /readyz names the problem.
"""

import time
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError

Mode = Literal["auto", "required", "off"]
WAITAOF, FSYNC_ALWAYS = "waitaof", "fsync-always"
RECHECK_SECONDS = (
    1.0  # a confirmed setup is looked at again this often (a CONFIG SET may change it)
)


class NotDurable(Exception):
    """Redis did not confirm the write in time: the rows stay and are published again."""


@dataclass
class Durability:
    mode: Mode = "auto"
    timeout_ms: int = 2_000
    method: str | None = None  # how confirmation is obtained; None = not waited for
    problem: str | None = None  # why rows are being kept, for /readyz
    checked_at: float = float("-inf")

    async def ready(self, redis: Redis) -> bool:
        """True when the relay may publish now (with self.method telling how to confirm)."""
        if self.mode == "off":
            return True
        if self.problem is None and time.monotonic() - self.checked_at < RECHECK_SECONDS:
            return True
        self.method, self.problem = await self._inspect(redis)
        self.checked_at = time.monotonic()
        return self.problem is None

    async def _inspect(self, redis: Redis) -> tuple[str | None, str | None]:
        persistence = await redis.info("persistence")
        if not int(persistence.get("aof_enabled", 0)):
            if self.mode == "auto":
                return None, None  # nothing to wait for: the server keeps no log
            return None, (
                "durability required (ALLUSE_REDIS_DURABILITY=required) but Redis has AOF off"
                " (appendonly no): outbox rows are kept until it is on"
            )
        version = str((await redis.info("server")).get("redis_version", "0"))
        if tuple(int(p) for p in version.split(".")[:2]) >= (7, 2):
            return WAITAOF, None
        try:
            fsync = (await redis.config_get("appendfsync")).get("appendfsync")
        except ResponseError:  # CONFIG may be refused to this client
            fsync = "unknown"
        if fsync in ("always", b"always"):
            return FSYNC_ALWAYS, None
        return None, (
            f"Redis {version} cannot confirm an AOF fsync (WAITAOF needs 7.2) with appendfsync"
            f" {fsync!r}: outbox rows are kept; use Redis >= 7.2, appendfsync always, or"
            " ALLUSE_REDIS_DURABILITY=off"
        )

    def confirm(self, reply: object) -> None:
        """Check WAITAOF's answer ([local fsyncs, replica fsyncs]); raise NotDurable if none."""
        if not (isinstance(reply, list) and reply and int(reply[0]) >= 1):
            self.checked_at = float("-inf")  # look at the server again before the next try
            raise NotDurable(f"Redis did not confirm the AOF fsync within {self.timeout_ms} ms")
