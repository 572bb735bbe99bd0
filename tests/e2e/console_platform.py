"""The whole platform plus the console as separate processes, with users of three roles.

Shared by the browser tests: started once per module, since starting four services and a
browser is the slow part.
"""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from shared.infra.trust.signing import identity_env, new_identities
from shared.tooling.embedded import free_port
from tests.e2e.test_platform import wait_ready

SERVICES = ("security", "account", "integration", "console")


@dataclass
class Platform:
    env: dict[str, str]
    ports: dict[str, int]
    tmp: Path
    passwords: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    portfolio: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def console(self) -> str:
        return f"http://127.0.0.1:{self.ports['console']}"

    def cli(self, *args: str, token: str | None = None, check: bool = True) -> str:
        env = {**self.env, **({"ALLUSE_TOKEN": token} if token else {})}
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert not check or done.returncode == 0, done.stderr
        return done.stdout

    def user(self, name: str, role: str) -> str:
        password = f"Pw-{uuid.uuid4().hex[:10]}!"
        pw = self.tmp / f"{name}.pw"
        pw.write_text(password)
        self.cli(
            "security",
            "create-user",
            "--username",
            name,
            "--role",
            role,
            "--password-file",
            str(pw),
        )
        self.passwords[name] = password
        return password

    def token(self, name: str) -> str:
        body = urllib.parse.urlencode(
            {"grant_type": "password", "username": name, "password": self.passwords[name]}
        ).encode()
        with urllib.request.urlopen(self.env["ALLUSE_TOKEN_URL"], data=body, timeout=10) as r:
            return str(json.loads(r.read())["access_token"])


@contextmanager
def platform(redis_url: str, database_url: str, prefix: str, tmp: Path) -> Iterator[Platform]:
    ports = {name: free_port() for name in SERVICES}
    security = f"http://127.0.0.1:{ports['security']}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ALLUSE_STREAM_PREFIX": prefix,
        "ALLUSE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLUSE_AUDIT_KEYS": Fernet.generate_key().decode(),
        "ALLUSE_JWKS_URL": f"{security}/.well-known/jwks.json",
        "ALLUSE_SECURITY_URL": security,
        "ALLUSE_TOKEN_URL": f"{security}/oauth/token",
        "ALLUSE_BLOCK_MS": "20",
        "ALLUSE_CONSOLE_SERVICES": ",".join(
            f"{n}=http://127.0.0.1:{ports[n]}" for n in SERVICES[:3]
        ),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    own = identity_env(new_identities())  # the console signs nothing: it is a client
    try:
        for name in SERVICES:
            log = tmp / f"{name}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env={**env, **own.get(name, {}), "ALLUSE_HTTP_PORT": str(ports[name])},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            procs[name] = proc
            wait_ready(ports[name], proc, log)
        yield Platform(env, ports, tmp, procs=procs)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            assert proc.wait(20) == 0, "a service did not stop cleanly on SIGTERM"


def initialize(p: Platform, admin: str) -> None:
    """A $250,000 moderate system, made with the CLI as an admin would."""
    out: dict[str, Any] = json.loads(
        p.cli(
            "--json",
            "init",
            "--capital",
            "250000.00",
            "--template",
            "moderate",
            "--name",
            "Family fund",
            token=p.token(admin),
        )
    )
    p.portfolio = out["portfolio_id"]
    p.accounts = {a["type"]: a["id"] for a in out["accounts"]}
