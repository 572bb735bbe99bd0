"""A Redis Cluster of the test's own: three masters on free ports, AOF on, each of which the
test may kill (SIGKILL) and start again from its AOF and cluster config."""

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from shared.tooling.embedded import free_port
from tests.support.waiting import until_sync

SLOTS = 16384


def redis_server() -> str | None:
    return shutil.which("redis-server")


class LocalCluster:
    """`args` are added to each server's (and win over the defaults); `admin` is the
    (user, password) the cluster is set up with when an ACL file turns the default user off."""

    def __init__(
        self,
        root: Path,
        binary: str,
        masters: int = 3,
        *,
        args: Sequence[str] = (),
        admin: tuple[str, str] | None = None,
    ) -> None:
        self.binary, self.args = binary, list(args)
        self.auth: dict[str, Any] = {"username": admin[0], "password": admin[1]} if admin else {}
        self.ports = [free_port() for _ in range(masters)]
        self.buses = [free_port() for _ in range(masters)]  # cluster bus (default port + 10000)
        self.dirs = [root / f"node-{port}" for port in self.ports]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * masters
        seeds = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        self.url = f"redis+cluster://{seeds}/0"

    def node(self, i: int) -> redis.Redis:
        return redis.Redis(port=self.ports[i], socket_timeout=5, **self.auth)

    def command(self, i: int, *args: Any) -> Any:
        """A raw command to node `i` (the cluster administration has no typed methods)."""
        node = self.node(i)
        return node.execute_command(*args)  # type: ignore[no-untyped-call]  # unannotated in redis-py

    def start_node(self, i: int) -> None:
        """Start (or restart) node `i`: it reloads its AOF and rejoins with its nodes.conf."""
        self.dirs[i].mkdir(parents=True, exist_ok=True)
        self.procs[i] = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.ports[i]),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dirs[i]),
                "--logfile",
                "redis.log",
                "--save",
                "",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                str(self.buses[i]),
                "--cluster-node-timeout",
                "2000",
                "--cluster-require-full-coverage",
                "no",
                # Redis 7.0 has no WAITAOF: the relay confirms durability by an fsync per write.
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                *self.args,
            ]
        )
        self._until(lambda: self.node(i).ping(), f"node {i} did not answer")

    def start(self) -> None:
        for i in range(len(self.ports)):
            self.start_node(i)
        share = SLOTS // len(self.ports)
        for i in range(len(self.ports)):
            last = SLOTS - 1 if i == len(self.ports) - 1 else (i + 1) * share - 1
            self.command(i, "CLUSTER ADDSLOTSRANGE", i * share, last)
        for port, bus in zip(self.ports[1:], self.buses[1:], strict=True):
            self.command(0, "CLUSTER MEET", "127.0.0.1", port, bus)
        self.wait_ok()

    def wait_ok(self) -> None:
        """Until every node says the cluster is ok and knows every master."""

        def ok(i: int) -> bool:
            info = self.node(i).cluster("INFO")
            return bool(
                info["cluster_state"] == "ok"
                and int(info["cluster_known_nodes"]) == len(self.ports)
            )

        self._until(lambda: all(ok(i) for i in range(len(self.ports))), "cluster not ok")

    def owner(self, key: str) -> int:
        """Which node holds `key`'s slot."""
        client = RedisCluster(host="127.0.0.1", port=self.ports[0], **self.auth)
        try:
            node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]  # unannotated in redis-py
            return self.ports.index(node.port)
        finally:
            client.close()

    def move(self, key: str, to: int) -> None:
        """Migrate `key`'s slot, with every key in it, to node `to` as a resharding does:
        clients meet ASK while it moves and MOVED after."""
        self.wait_ok()  # a node just restarted takes a moment to see the others
        source, slot = self.owner(key), int(self.command(0, "CLUSTER KEYSLOT", key))
        ids = [self.command(i, "CLUSTER MYID") for i in range(len(self.ports))]
        self.command(to, "CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
        self.command(source, "CLUSTER SETSLOT", slot, "MIGRATING", ids[to])
        login = ["AUTH2", self.auth["username"], self.auth["password"]] if self.auth else []
        while keys := self.command(source, "CLUSTER GETKEYSINSLOT", slot, 100):
            self.command(
                source, "MIGRATE", "127.0.0.1", self.ports[to], "", 0, 10_000, *login, "KEYS", *keys
            )
        for i in [to, source, *(i for i in range(len(self.ports)) if i not in (to, source))]:
            self.command(i, "CLUSTER SETSLOT", slot, "NODE", ids[to])

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    @staticmethod
    def _until(check: Callable[[], object], what: str, timeout: float = 30) -> None:
        def holds() -> bool:
            with contextlib.suppress(redis.RedisError, OSError):  # a node still starting
                return bool(check())
            return False

        until_sync(holds, timeout=timeout, what=what)


@contextlib.contextmanager
def local_cluster(root: Path, binary: str, **options: Any) -> Iterator[LocalCluster]:
    cluster = LocalCluster(root, binary, **options)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
