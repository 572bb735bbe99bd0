"""The account service as a separate process (`python -m services.account`), as deployed."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from redis.asyncio import Redis

from services.bench.report import progress

ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.account"],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"account service exited with {self.proc.returncode}:\n{tail}")

    async def wait_ready(self, redis: Redis, members: str, timeout: float = 60.0) -> None:
        """It has joined the replicas of the commands stream (`members`, its key of
        shared/infra/stream/partitions.py): its router moves what is written from now on, oldest first
        (warm-up confirms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if await redis.zcard(members) > 0:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"account service not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGINT (its clean shutdown), then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                progress(f"account service ignored {sig.name}")
        if self._log is not None:
            self._log.close()
