"""The whole platform on scratch servers, started as `make run` starts it (services/launch.py),
with the faults chaos needs: kill -9 of a service, of Redis, a fast PostgreSQL shutdown.

`acl=True` (soak, chaos) runs it as in production: Valkey with the generated ACL file (the
default user off, each service its own Redis user, passwords generated into the run's
directory), lanes required, and each machine client made with create-client, so it writes
only its own lane as its own Redis user. The harness watches as `observer`, a user of the
scratch server alone that may read the server's state and streams' sizes and nothing else."""

import contextlib
import hashlib
import os
import secrets
import sys
import time
from pathlib import Path
from types import TracebackType

from services.bench.scratch import ScratchPostgres, ScratchRedis, fresh
from shared.tooling import launch
from shared.tooling.embedded import free_port

READY_TIMEOUT_S = 120.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# The load's few clients stand in for many: the bench measures the platform, not one client's
# fair share of it, so per-client rate limits are off (docs/scopes.md, "Limits").
UNLIMITED = {"ALLUSE_RATE_COMMANDS_PER_SECOND": "0", "ALLUSE_RATE_QUERIES_PER_SECOND": "0"}
OBSERVER = "observer"  # the harness's own user on the scratch server (acl=True)
OBSERVES = "ping hello select client|setname info scan type xlen xinfo|groups xrange"


class Platform:
    def __init__(
        self, directory: Path, settings: dict[str, str] | None = None, *, acl: bool = False
    ) -> None:
        self.dir = fresh(directory)
        self.settings = settings or {}
        self.acl = self.dir / "redis.acl" if acl else None
        self.redis = ScratchRedis(self.dir / "redis", self.acl)
        self.postgres = ScratchPostgres(self.dir / "postgres")
        self.services: dict[str, launch.Service] = {}
        self.env: dict[str, str] = {}
        self.access = launch.RedisAccess(self.redis.url)  # one URL for all, without the ACL
        self.observer = self.redis.url  # what the harness reads the server's state as
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Platform":
        try:
            if self.acl is not None:
                self._write_acl(self.acl)
            self.redis.start()
            self._stack.callback(self.redis.stop)
            self.postgres.start()
            self._stack.callback(self.postgres.stop)
            ports = {name: free_port() for name in launch.SERVICES}
            env = launch.platform_env(
                self.redis.url, self.postgres.url, security_port=ports["security"], keys=self.dir
            )
            # Without the ACL file the load writes the shared streams as one trusted writer
            # (docs/lanes.md); with it, each client its own lane.
            lanes = "required" if self.acl is not None else "open"
            self.env = {**env, **UNLIMITED, "ALLUSE_LANES": lanes, **self.settings}
            kind = "with the generated ACL file" if self.acl is not None else "without an ACL"
            say(
                f"scratch Valkey {self.redis.url} (AOF on, {kind}), PostgreSQL in"
                f" {self.postgres.data_dir}"
            )
            self.services = self._stack.enter_context(
                launch.services(self.env, ports, var=self.dir, redis_access=self.access)
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def _write_acl(self, path: Path) -> None:
        """The generated ACL file (passwords made into this run's directory), the observer's
        user after it; the access of each service and of the security administration."""
        passwords = launch.redis_passwords(self.dir)
        prefix = {**os.environ, **self.settings}.get("ALLUSE_STREAM_PREFIX", "")
        launch.write_acl(path, passwords, prefix)
        password = secrets.token_hex(24)
        digest = hashlib.sha256(password.encode()).hexdigest()
        rules = " ".join(f"+{c}" for c in OBSERVES.split())
        with path.open("a") as f:
            f.write(f"user {OBSERVER} on #{digest} ~* resetchannels -@all {rules}\n")
        self.access = launch.acl_access(self.redis.url, passwords, path)
        self.observer = self.access.as_user(OBSERVER, password)
        self.redis.probe = self.observer

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for service in self.services.values():
            service.stop()
        self._stack.close()

    def client(self, role: str) -> dict[str, str]:
        """A machine client of `role` (client id and lane `load-<role>`), made as `make run`
        makes its operator; with the ACL, its REDIS_URL connects as its own user."""
        secret = self.dir / f"load-{role}.secret"
        admin = {**self.env, **self.access.admin_env()}
        made = launch.create_client(admin, f"load-{role}", role, secret, redis_access=self.access)
        return {**self.env, **made}

    def add_replica(self, name: str, module: str) -> float:
        """Another process of a service (its own consumer name and port); seconds to ready."""
        mine = {"REDIS_URL": self.access.of(module)}
        env = {**self.env, **launch.identities(self.dir)[module], **mine}
        replica = launch.Service(name, free_port(), env, self.dir / "logs", module=module)
        self.services[name] = replica
        replica.start()
        return replica.wait_ready(READY_TIMEOUT_S)

    # --- faults: each returns {service: seconds from the fault until it was ready again} ---

    def kill_service(self, name: str) -> dict[str, float]:
        service = self.services[name]
        started = time.monotonic()
        service.kill()
        service.start()
        service.wait_ready(READY_TIMEOUT_S)
        return {name: time.monotonic() - started}

    def kill_redis(self) -> dict[str, float]:
        started = time.monotonic()
        self.redis.kill()
        self.redis.start()
        return self.wait_all_ready(started)

    def restart_postgres(self) -> dict[str, float]:
        started = time.monotonic()
        self.postgres.restart()
        return self.wait_all_ready(started)

    def wait_all_ready(self, since: float) -> dict[str, float]:
        """Each service's first 200 on /readyz after `since`. A service that exited is started
        again first (as a supervisor would) and its name is marked with '(restarted)'."""
        ready: dict[str, float] = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(self.services) and time.monotonic() < deadline:
            for name, service in self.services.items():
                if name in ready or f"{name} (restarted)" in ready:
                    continue
                if service.exited():
                    say(
                        f"{name} exited after the fault (code {service.proc and service.proc.returncode}); starting it again"
                    )
                    service.start()
                    service.wait_ready(READY_TIMEOUT_S)
                    ready[f"{name} (restarted)"] = time.monotonic() - since
                elif service.ready():
                    ready[name] = time.monotonic() - since
            time.sleep(0.05)
        return ready
