"""`make run` as a user runs it: its embedded Valkey runs the generated ACL file, like production.

The launcher (services/run.py) runs in a directory of the test's own (its var/ there), on the
test's own database, with free ports; the demo runs to its end, then a second terminal sources
var/alluse.env and asks for the summary, and Ctrl-C (SIGINT) stops everything.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from shared.tooling.embedded import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# `make run` with other ports: the fixed ones may be taken by a `make run` of the developer's.
DRIVER = """
import json, sys
from services import run
from shared.tooling import launch
ports = json.loads(sys.argv[1])
launch.SERVICES.update({n: p for n, p in ports.items() if n != "console"})
run.PORTS = ports
run.REDIS_PORT = 0
sys.exit(run.main(sys.argv[2:]))
"""


@dataclass
class Launched:
    proc: "subprocess.Popen[str]"
    lines: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        """Every line it prints (the lifecycle tail keeps printing after the demo)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "demo done" in line:
                self.done.set()
        self.done.set()  # it exited: the waiter looks at why

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def make_run(own_database: str, tmp_path: Path) -> Iterator[Launched]:
    ports = {name: free_port() for name in ("security", "account", "integration", "console")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ALLUSE_", "REDIS_"))},
        "DATABASE_URL": own_database,  # the embedded PostgreSQL is another test's subject
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(ports), "--weeks", "1", "--rate", "200"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    launched = Launched(proc)
    reader = threading.Thread(target=launched.read, daemon=True)
    reader.start()
    try:
        yield launched
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            proc.wait(60)
        reader.join(10)


def test_make_run_runs_valkey_with_the_acl_each_service_as_its_own_user_and_the_demo_completes(
    make_run: Launched, tmp_path: Path
) -> None:
    make_run.done.wait()
    assert make_run.proc.poll() is None, make_run.output[-5000:]
    var = tmp_path / "var"

    # The second terminal: its settings carry the demo operator's own Redis user.
    env_file = var / "alluse.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALLUSE_", "REDIS_"))}
    second = subprocess.run(
        ["bash", "-c", f"source {env_file} && echo $REDIS_URL && alluse --json summary"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    url, summary = second.stdout.split("\n", 1)
    assert json.loads(summary)  # the demo's portfolios, summed up
    parts = urllib.parse.urlsplit(url)
    assert parts.username is not None and parts.username.startswith("client-demo-operator-")
    assert parts.password and parts.password not in env_file.read_text()  # read from its file
    host, port = parts.hostname or "", parts.port or 0

    # The default user is off; a wrong password is refused.
    for user, password in ((None, None), ("default", "x" * 16), (parts.username, "wrong")):
        probe = redis.Redis(host=host, port=port, username=user, password=password)
        with pytest.raises(redis.exceptions.AuthenticationError):
            probe.ping()
        probe.close()
    as_client = redis.Redis.from_url(url)
    assert as_client.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):  # its lane only
        as_client.xadd("alluse.account.commands", {"x": "y"})
    as_client.close()

    # Each service connected as its own Redis user; the passwords were never printed.
    files = sorted((var / "redis-users").iterdir())
    assert {f.name for f in files} >= {"account", "integration", "security", "console"}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    passwords = {f.name: f.read_text() for f in files}
    assert stat.S_IMODE((var / "redis" / "users.acl").stat().st_mode) == 0o600
    operator = redis.Redis(
        host=host, port=port, username="operator", password=passwords["operator"]
    )
    connected = {c["user"] for c in operator.client_list()}
    operator.close()
    assert {"account", "integration", "security"} <= connected, connected
    assert "default" not in connected, connected
    assert not any(p in make_run.output for p in passwords.values())
    for log in (var / "logs").glob("*.log"):  # no service was refused anything it needed
        assert "NOPERM" not in log.read_text(), log.read_text()[-3000:]

    # The security administration from the second terminal provisions another client's user.
    admin_file = var / "alluse-admin.env"
    assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
    assert not any(p in admin_file.read_text() for p in passwords.values())
    made = subprocess.run(
        [
            "bash",
            "-c",
            f"source {env_file} && source {admin_file} && alluse --json security create-client"
            " --client-id engine-2 --role trading_engine --portfolio '*'",
        ],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    client = json.loads(made.stdout)
    assert client["redis"] == "running server updated", client
    engine = redis.Redis(
        host=host, port=port, username=client["redis_user"], password=client["redis_password"]
    )
    assert engine.ping()
    engine.close()
    assert f"user {client['redis_user']} " in (var / "redis" / "users.acl").read_text()

    make_run.proc.send_signal(signal.SIGINT)
    assert make_run.proc.wait(60) == 0, make_run.output[-3000:]
    assert not env_file.exists()  # it would point a second terminal at stopped servers
    assert not admin_file.exists()
