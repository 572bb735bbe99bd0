"""Starting the platform's processes as `make run` does, for `make run`, `make soak` and
`make chaos`: the settings every process shares, the service processes (which can be killed
and started again), and machine clients made with the CLI."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cryptography.fernet import Fernet

from shared.infra.trust.signing import identity_env, new_identities

VAR = Path("var")
SERVICES = {"security": 8081, "account": 8082, "integration": 8083}
# Keys that live outside the database: made once per machine when the environment has none.
KEY_NAMES = {"ALLUSE_ENCRYPTION_KEYS": "encryption.keys", "ALLUSE_AUDIT_KEYS": "audit.keys"}
KEY_FILES = {name: VAR / file for name, file in KEY_NAMES.items()}


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


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
    env: dict[str, str], ports: dict[str, int] = SERVICES, var: Path = VAR
) -> Iterator[dict[str, Service]]:
    """The services, each with its own identity (the console, a client, has none), started in
    order (security first: the others fetch its JWKS); logs in `var`/logs."""
    running: dict[str, Service] = {}
    own = identities(var)
    try:
        for port in ports.values():
            ensure_free(port)
        for name, port in ports.items():
            running[name] = service = Service(
                name, port, {**env, **own.get(name, {})}, var / "logs"
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
    env: dict[str, str], client_id: str, role: str, secret_file: Path, *, portfolios: str = "*"
) -> dict[str, str]:
    """A machine client made with the CLI; its secret goes only to `secret_file` (0600).
    It is granted `portfolios` (default `*`, the whole platform: a demo's or a load's clients
    touch every portfolio; docs/scopes.md). Returns the settings with which the CLI fetches
    its tokens."""
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
    secret_file.unlink(missing_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.loads(done.stdout)["client_secret"])
    return {"ALLUSE_CLIENT_ID": client_id, "ALLUSE_CLIENT_SECRET_FILE": str(secret_file.absolute())}
