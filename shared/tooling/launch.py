"""Starting the platform's processes as `make run` does, for `make run`, `make soak` and
`make chaos`: the settings every process shares, the service processes (which can be killed
and started again), and machine clients made with the CLI."""

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from shared.contracts.streams import ACL_ADMIN, ACL_USERS
from shared.infra.trust.signing import identity_env, new_identities
from shared.tooling import embedded

VAR = Path("var")
SERVICES = {"security": 8081, "account": 8082, "integration": 8083}
# Keys that live outside the database: made once per machine when the environment has none.
KEY_NAMES = {"ALLUSE_ENCRYPTION_KEYS": "encryption.keys", "ALLUSE_AUDIT_KEYS": "audit.keys"}
KEY_FILES = {name: VAR / file for name, file in KEY_NAMES.items()}


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def warn(message: str) -> None:
    print(f"\033[1;33mWARNING: {message}\033[0m", file=sys.stderr, flush=True)


def write_secret(path: Path, value: str) -> None:
    """`value` alone in `path`, mode 0600 from its creation (never readable by others)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


# The user that provisions machine clients' Redis users: the generator's, with its rules (ACL
# SETUSER can grant anything, so this user is as strong as root; it runs nothing else).
ADMIN_USER = ACL_ADMIN


@dataclass(frozen=True)
class RedisAccess:
    """Where the platform's Redis is and as whom each process connects to it.

    `users` empty: one URL for every process and client (a Redis without the ACL file);
    otherwise each ACL user's URL, with its credentials, and the provisioning settings of the
    security administration (ALLUSE_REDIS_ADMIN_URL, ALLUSE_REDIS_ACL_FILE)."""

    url: str
    users: dict[str, str] = field(default_factory=dict)
    admin_url: str = ""
    acl_file: str = ""

    def of(self, user: str) -> str:
        return self.users.get(user, self.url)

    def as_user(self, user: str, password: str) -> str:
        """The server's URL with `user`'s credentials (a machine client's, `client-<lane>`)."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.netloc.rsplit("@", 1)[-1]
        netloc = (
            f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@{host}"
        )
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def admin_env(self) -> dict[str, str]:
        """The settings of the security administration (`alluse security ...`): the security
        service's user, and where a machine client's Redis user is provisioned."""
        if not self.users:
            return {"REDIS_URL": self.url}
        return {
            "REDIS_URL": self.users["security"],
            "ALLUSE_REDIS_ADMIN_URL": self.admin_url,
            "ALLUSE_REDIS_ACL_FILE": self.acl_file,
        }


def password_file(user: str, directory: Path = VAR) -> Path:
    """Where `make run` keeps the password of Redis user `user` (alone, mode 0600): a shell
    reads it with $(cat ...), never printed."""
    return directory / "redis-users" / user


def redis_passwords(directory: Path = VAR) -> dict[str, str]:
    """One random password per ACL user and for the ACL administrator, made once and kept in
    `directory`/redis-users/<user> (mode 0600); a user added later gets one then. Keyed as
    the ACL file generator takes them (ALLUSE_REDIS_PASSWORD_<USER>)."""
    password_file(ADMIN_USER, directory).parent.mkdir(mode=0o700, exist_ok=True)
    made: dict[str, str] = {}
    for user in [*ACL_USERS, ADMIN_USER]:
        path = password_file(user, directory)
        if not path.exists():
            write_secret(path, secrets.token_hex(24))
            say(f"made a password for the Redis user {user} in {path} (mode 0600)")
        made[password_variable(user)] = path.read_text().strip()
    return made


def password_variable(user: str) -> str:
    """The setting the ACL file generator takes `user`'s password from."""
    return f"ALLUSE_REDIS_PASSWORD_{user.upper()}"


def write_acl(path: Path, passwords: dict[str, str], prefix: str) -> None:
    """The generated ACL file (`python -m services.security admin redis-acl`, which keeps the
    machine clients' users `create-client` added to it, and writes the administrator's user
    since its password is given), mode 0600."""
    if not path.exists():
        write_secret(path, "")  # the generator rewrites it in place: 0600 from the start
    generate = [sys.executable, "-m", "services.security", "admin", "redis-acl"]
    done = subprocess.run(
        [*generate, "--out", str(path), "--prefix", prefix],
        env={**os.environ, **passwords},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"generating the Redis ACL file failed: {done.stderr.strip()}")


@contextlib.contextmanager
def acl_redis(
    data_dir: Path, port: int = 0, *, prefix: str = "", var: Path = VAR
) -> Iterator[RedisAccess]:
    """The embedded server running the generated ACL file (`data_dir`/users.acl, regenerated at
    every start from the passwords in `var`): the default user off, each service and kind of
    client its own user, machine clients' users as provisioned (kept across restarts)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    passwords = redis_passwords(var)
    acl = data_dir / "users.acl"
    write_acl(acl, passwords, prefix)
    probe = ("security", passwords[password_variable("security")])
    with embedded.embedded_redis(data_dir, port, aclfile=acl, probe=probe) as url:
        yield acl_access(url, passwords, acl)


def acl_access(url: str, passwords: dict[str, str], acl: Path) -> RedisAccess:
    """Each ACL user's URL on the server at `url` (no credentials), running the ACL file `acl`
    generated with `passwords` (redis_passwords)."""
    base = RedisAccess(url)
    users = {u: base.as_user(u, passwords[password_variable(u)]) for u in ACL_USERS}
    return RedisAccess(
        url,
        users,
        admin_url=base.as_user(ADMIN_USER, passwords[password_variable(ADMIN_USER)]),
        acl_file=str(acl.absolute()),
    )


def unrestricted(url: str) -> bool:
    """Whether `url` connects as a user that may run anything on any key: a Redis without the
    ACL file (or with a user as strong as one), where Redis enforces no lane."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        rules: dict[str, Any] = client.acl_getuser(str(client.acl_whoami())) or {}
    except redis.exceptions.NoPermissionError:  # not even its own rules: a restricted user
        return False
    finally:
        client.close()
    # redis-py splits the rules into categories and commands, Redis versions differ in which.
    granted = [*rules.get("categories", []), *rules.get("commands", [])]
    return "+@all" in granted and "~*" in rules.get("keys", [])


def local_key(name: str, directory: Path = VAR) -> str:
    """$name, or the local key file for it in `directory`, made once and kept 0600."""
    if keys := os.environ.get(name):
        return keys
    path = directory / KEY_NAMES[name]
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
        say(f"made a local key in {path} (set {name} to use your own)")
    return path.read_text().strip()


def platform_env(
    redis_url: str, database_url: str, *, security_port: int, keys: Path = VAR
) -> dict[str, str]:
    """What every service process and the CLI need to find the servers and each other;
    local keys (when the environment has none) live in `keys`."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **{name: local_key(name, keys) for name in KEY_NAMES},
        "ALLUSE_JWKS_URL": f"http://127.0.0.1:{security_port}/.well-known/jwks.json",
        "ALLUSE_TOKEN_URL": f"http://127.0.0.1:{security_port}/oauth/token",
    }


def identities(directory: Path = VAR) -> dict[str, dict[str, str]]:
    """Each service's signing key (made once in `directory`/service-keys.json, mode 0600) and,
    for the security service, the public halves it publishes: per-service environment."""
    path = directory / "service-keys.json"
    if not path.exists():
        path.write_text(json.dumps(new_identities()))
        path.chmod(0o600)
        say(f"made a signing key per service in {path} (see docs/security.md, 'Who signs what')")
    return identity_env(json.loads(path.read_text()))


class Service:
    """One service process (`python -m services.<module>`), which can be started again after
    it stopped or was killed, with the same port, settings and (appended) log."""

    def __init__(
        self, name: str, port: int, env: dict[str, str], logs: Path, module: str = ""
    ) -> None:
        self.name, self.port, self.module = name, port, module or name
        self.env, self.log = {**env, "ALLUSE_HTTP_PORT": str(port)}, logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.module}"],
                env=self.env,
                stdout=log,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def ready(self) -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r,
        ):
            return bool(r.status == 200)
        return False

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds until /readyz answered 200; SystemExit when the process exits or times out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.exited():
                code = self.proc.returncode if self.proc else None
                raise SystemExit(f"the {self.name} service exited (code {code}); see {self.log}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.1)
        raise SystemExit(
            f"the {self.name} service did not become ready in {timeout:.0f}s; see {self.log}"
        )

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def services(
    env: dict[str, str],
    ports: dict[str, int] = SERVICES,
    var: Path = VAR,
    redis_access: RedisAccess | None = None,
) -> Iterator[dict[str, Service]]:
    """The services, each with its own identity (the console, a client, has none), started in
    order (security first: the others fetch its JWKS); logs in `var`/logs. With
    `redis_access`, each connects to Redis as its own user (the console as `console`)."""
    running: dict[str, Service] = {}
    own = identities(var)
    try:
        for port in ports.values():
            ensure_free(port)
        for name, port in ports.items():
            mine = {"REDIS_URL": redis_access.of(name)} if redis_access else {}
            running[name] = service = Service(
                name, port, {**env, **own.get(name, {}), **mine}, var / "logs"
            )
            service.start()
            service.wait_ready()
            say(
                f"{name} service up (pid {service.pid}, http://127.0.0.1:{port}/readyz, log {service.log})"
            )
        yield running
    finally:
        for service in running.values():
            service.stop()
            say(f"{service.name} service stopped")


def ensure_free(port: int) -> None:
    """Refuse to start next to another copy of the platform: its /readyz would answer for ours."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(
                f"port {port} is in use: is the platform already running (another `make run`)?"
            )


def create_client(
    env: dict[str, str],
    client_id: str,
    role: str,
    secret_file: Path,
    *,
    portfolios: str = "*",
    redis_access: RedisAccess | None = None,
) -> dict[str, str]:
    """A machine client made with the CLI; its secret goes only to `secret_file` (0600).
    It is granted `portfolios` (default `*`, the whole platform: a demo's or a load's clients
    touch every portfolio; docs/scopes.md). Returns the settings with which the CLI fetches
    its tokens. With `redis_access` running the ACL file, `env` is the security
    administration's (RedisAccess.admin_env): the client's Redis user `client-<id>` is made
    too, its password kept beside the secret (`secret_file` with suffix .redis, 0600), and
    REDIS_URL in the settings connects as that user."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "--json",
            "security",
            "create-client",
            "--client-id",
            client_id,
            "--role",
            role,
            "--portfolio",
            portfolios,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"creating the client {client_id} failed: {done.stderr.strip()}")
    made = json.loads(done.stdout)
    write_secret(secret_file, made["client_secret"])
    settings = {
        "ALLUSE_CLIENT_ID": client_id,
        "ALLUSE_CLIENT_SECRET_FILE": str(secret_file.absolute()),
    }
    if redis_access is not None and redis_access.users:
        if made.get("redis", "").startswith("running server not updated"):
            raise SystemExit(f"the client {client_id} got no Redis user: {made.get('redis')}")
        write_secret(redis_password_file(secret_file), made["redis_password"])
        settings["REDIS_URL"] = redis_access.as_user(made["redis_user"], made["redis_password"])
    return settings


def redis_password_file(secret_file: Path) -> Path:
    """Where `create_client` keeps the Redis password of the client whose secret is there."""
    return secret_file.with_suffix(".redis")
