"""The one way to a Redis client: a single server or a Redis Cluster, told apart by the URL.

    redis://[user:password@]host:port/0                      one server (or a proxy)
    redis+cluster://[user:password@]host:port[,host:port...]  a Redis Cluster, from seed nodes
    rediss+cluster://...                                     the same over TLS

A cluster client learns the slot map from the seeds, sends each command to the node that
owns its key's slot and follows MOVED/ASK. The services never send a multi-key command across
slots (docs/architecture.md "Outgrowing one machine"), so the same code runs on both.
"""

from typing import Any, cast

from faststream.redis import RedisBroker, RedisClusterBroker
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

CLUSTER = "+cluster"
Rows = list[tuple[bytes, dict[bytes, bytes]]]  # a stream's entries as redis-py gives them


def streams_read(reply: Any) -> list[tuple[str, Rows]]:
    """An XREAD or XREADGROUP reply as (stream key, its entries), whichever protocol the URL
    asked for: RESP2 gives a list of [key, entries], RESP3 a map of key -> [entries]."""
    if not reply:
        return []
    if isinstance(reply, dict):
        pairs = [(key, [e for part in parts for e in part]) for key, parts in reply.items()]
    else:
        pairs = [(key, rows) for key, rows in reply]
    return [(key.decode() if isinstance(key, bytes) else str(key), rows) for key, rows in pairs]


def is_cluster(url: str) -> bool:
    return url.partition("://")[0].endswith(CLUSTER)


def seeds(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL as (the URL of its first seed, every seed's host and port)."""
    scheme, _, rest = url.partition("://")
    auth, at, hostpart = rest.rpartition("@")
    end = min((i for i in (hostpart.find("/"), hostpart.find("?")) if i >= 0), default=None)
    hosts, tail = hostpart[:end], hostpart[end:] if end is not None else ""
    nodes = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon or not port.isdigit():
            name, port = host, "6379"
        nodes.append((name.strip("[]"), int(port)))
    if not hosts or not all(name for name, _ in nodes):
        raise ValueError(f"no seed host in the Redis Cluster URL {scheme}://…")
    first = f"{scheme.removesuffix(CLUSTER)}://{auth}{at}{hosts.split(',')[0]}{tail}"
    return first, nodes


def connect(url: str, **options: Any) -> Redis:
    """A client for `url`. A RedisCluster offers every command the platform uses under the
    same names, so it is handed out as a Redis (one type in the code, whichever the server)."""
    if not is_cluster(url):
        return Redis.from_url(url, **options)
    first, nodes = seeds(url)
    startup = [ClusterNode(host, port) for host, port in nodes]
    return cast(Redis, RedisCluster.from_url(first, startup_nodes=startup, **options))


def broker(url: str, **options: Any) -> RedisBroker:
    """FastStream's broker for `url` (its cluster broker reads each stream on its own node)."""
    if not is_cluster(url):
        return RedisBroker(url, **options)
    first, nodes = seeds(url)
    return RedisClusterBroker(first, startup_nodes=nodes, **options)


def cluster(redis: Redis) -> RedisCluster | None:
    """The cluster client behind `redis`, or None for a single server."""
    return redis if isinstance(redis, RedisCluster) else None
