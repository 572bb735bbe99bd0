"""Whether Redis can confirm that what the relay published survives a Redis crash.

The relay deletes an outbox row only once its event is durable (docs/architecture.md "Durability"):
- Redis >= 7.2 (and Valkey) with AOF on: WAITAOF 1 0 after the XADDs, on the same connection,
  answers once the local AOF has fsynced them. On a Redis Cluster, one WAITAOF goes to each
  node the XADDs went to, behind them on that node's connection; a slot that moved meanwhile
  leaves the batch unconfirmed (published again).
- Redis < 7.2 with AOF on and `appendfsync always`: the server fsyncs before it replies, so the
  XADD's reply is the confirmation.
- Anything else cannot confirm: when durability is required, rows are kept and retried, and
  /readyz names the problem.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

from shared.infra.runtime.redisclient import cluster

log = logging.getLogger(__name__)
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
        before = self.problem
        self.method, self.problem = await self._inspect(redis)
        self.checked_at = time.monotonic()
        if self.problem is not None and self.problem != before:
            # Said once, in the log an operator reads (not only on /readyz): until it changes.
            log.warning("not ready: events are not published: %s", self.problem)
        elif self.problem is None and before is not None:
            log.info("Redis confirms durability again (%s): publishing", self.method)
        return self.problem is None

    async def _inspect(self, redis: Redis) -> tuple[str | None, str | None]:
        """The weakest of the servers that hold data (every primary of a cluster) decides."""
        persistence = await _each(redis, lambda r, **kw: r.info("persistence", **kw))
        if not all(int(p.get("aof_enabled", 0)) for p in persistence):
            if self.mode == "auto":
                return None, None  # nothing to wait for: the server keeps no log
            return None, (
                "durability required (ALLUSE_REDIS_DURABILITY=required) but Redis has AOF off"
                " (appendonly no): outbox rows are kept until it is on"
            )
        servers = await _each(redis, lambda r, **kw: r.info("server", **kw))
        version = min((str(s.get("redis_version", "0")) for s in servers), key=_release)
        if _release(version) >= (7, 2):
            return WAITAOF, None
        try:
            got = await _each(redis, lambda r, **kw: r.config_get("appendfsync", **kw))
            fsyncs = {_text(c.get("appendfsync", c.get(b"appendfsync"))) for c in got}
            fsync = fsyncs.pop() if len(fsyncs) == 1 else "mixed"
        except ResponseError:  # CONFIG may be refused to this client
            fsync = "unknown"
        if fsync == "always":
            return FSYNC_ALWAYS, None
        return None, (
            f"Redis {version} cannot confirm an AOF fsync (WAITAOF needs 7.2) with appendfsync"
            f" {fsync!r}: outbox rows are kept; use Redis >= 7.2, appendfsync always, or"
            " ALLUSE_REDIS_DURABILITY=off"
        )

    def wait(self, redis: Redis, pipe: Any, keys: Iterable[str]) -> "Waits":
        """Queue the confirmation of the writes to `keys` queued on `pipe` (none when the
        method is not WAITAOF); `.confirm()` the pipeline's replies."""
        if self.method != WAITAOF:
            return Waits(self, {})
        nodes = cluster(redis)
        if nodes is None:
            pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms)
            return Waits(self, {})
        placed = {key: _owner(nodes, key) for key in keys}
        for node in {n.name: n for n in placed.values()}.values():
            pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms, target_nodes=node)
        return Waits(self, {k: n.name for k, n in placed.items()}, nodes)

    def confirm(self, reply: object) -> None:
        """Check WAITAOF's answer ([local fsyncs, replica fsyncs]); raise NotDurable if none."""
        if not (isinstance(reply, list) and reply and int(reply[0]) >= 1):
            self.checked_at = float("-inf")  # look at the server again before the next try
            raise NotDurable(f"Redis did not confirm the AOF fsync within {self.timeout_ms} ms")


@dataclass
class Waits:
    """The WAITAOFs queued behind a batch: one, or (cluster) one per node written to."""

    durability: Durability
    placed: dict[str, str]  # cluster: key -> the node it was written to
    nodes: RedisCluster | None = None

    def confirm(self, replies: list[Any]) -> None:
        """Raise NotDurable unless every WAITAOF confirmed, on the node that took the write."""
        if self.durability.method != WAITAOF:
            return
        count = len(set(self.placed.values())) if self.nodes is not None else 1
        for reply in replies[len(replies) - count :]:
            self.durability.confirm(reply)
        if self.nodes is not None and any(
            _owner(self.nodes, k).name != n for k, n in self.placed.items()
        ):  # redirected to another node (MOVED/ASK): its WAITAOF did not cover the write
            raise NotDurable("a slot moved while the batch was written")


def _owner(nodes: RedisCluster, key: str) -> ClusterNode:
    node = nodes.get_node_from_key(key)
    if node is None:  # only asked of replicas; a primary owns every covered slot
        raise NotDurable(f"no node holds {key}")
    return node


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _each(
    redis: Redis, ask: Callable[..., Awaitable[dict[Any, Any]]]
) -> list[dict[Any, Any]]:
    """`ask` of the one server, or of every primary of a cluster (each its own answer)."""
    nodes = cluster(redis)
    if nodes is None:
        return [await ask(redis)]
    await nodes.initialize()  # the slot map, once: no primaries are known before it
    return [await ask(nodes, target_nodes=n) for n in nodes.get_primaries()]
