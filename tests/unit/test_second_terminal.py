"""A second terminal that just works: var/alluse.env, a fixed Redis port, progress with an ETA."""

import io
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from services import run
from shared.tooling import launch
from shared.tooling.embedded import free_port
from shared.tooling.progress import Progress, render


def test_the_env_file_sourced_in_bash_gives_alluse_its_servers_token_issuer_and_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {name: tmp_path / f"{name}.key" for name in launch.KEY_FILES}
    for name, key_file in files.items():
        monkeypatch.delenv(name, raising=False)
        key_file.write_text(f"{name}-from-file")
    monkeypatch.setattr(run, "KEY_FILES", files)  # what run.py reads
    env = {
        "REDIS_URL": "redis://127.0.0.1:6380/0",
        "DATABASE_URL": "postgresql://postgres:@/postgres?host=/x y/var/postgres",
        "ALLUSE_TOKEN_URL": "http://127.0.0.1:8081/oauth/token",
        "ALLUSE_CLIENT_ID": "demo-operator-1",
        "ALLUSE_CLIENT_SECRET_FILE": "/srv/var/demo-client.secret",
        "ALLUSE_CLIENT_SECRET": "must-not-be-written",
    }
    path = tmp_path / "alluse.env"
    run.write_env(env, path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "must-not-be-written" not in path.read_text()
    names = [*list(env)[:5], *files]
    script = (
        f"source {path} && " + " && ".join(f'echo "${n}"' for n in names) + " && command -v python"
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    *values, python = out.stdout.splitlines()
    assert values == [*list(env.values())[:5], *(f"{name}-from-file" for name in files)]
    assert Path(python).parent == Path(sys.executable).parent.absolute()


def test_keys_given_in_the_environment_are_never_written_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in launch.KEY_FILES:
        monkeypatch.setenv(name, f"operator-owned-{name}")
    path = tmp_path / "alluse.env"
    run.write_env({"REDIS_URL": "redis://r/0"}, path)
    for name in launch.KEY_FILES:
        assert name not in path.read_text()


def test_the_redis_password_is_read_from_its_file_when_sourced_never_written_down(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "var dir" / "demo-client.redis"
    secret.parent.mkdir()
    secret.write_text("s3cret-Redis_pw")
    path = tmp_path / "alluse.env"
    env = {"REDIS_URL": "redis://client-demo-operator-1:s3cret-Redis_pw@127.0.0.1:6380/0"}
    run.write_env(env, path, redis_password_file=secret)

    assert "s3cret" not in path.read_text()
    out = subprocess.run(
        ["bash", "-c", f"source {path} && echo $REDIS_URL"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == env["REDIS_URL"]


def test_a_given_redis_without_the_acl_is_used_and_a_warning_says_so_at_start(
    servers: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The test servers' Redis has no ACL file: one trusted writer only, said at start."""
    run.given_redis(servers[0])
    warned = capsys.readouterr().err
    assert "WARNING" in warned and "without the ACL file" in warned
    assert "single trusted writer" in warned


def test_the_embedded_redis_takes_its_fixed_port_when_free_and_another_when_not() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert free_port(port) == port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        other = free_port(port)
    assert other != port and other > 0


def test_the_bar_shows_count_share_rate_and_time_left() -> None:
    line = render("simulate", 30, 120, 10.0, "weeks")
    assert "30/120 weeks" in line and " 25%" in line
    assert "3.0 weeks/s" in line and "ETA 0:30" in line
    assert "[#######---------------------]" in line


def test_the_bar_says_done_and_how_long_it_took_at_the_end() -> None:
    assert render("redrive", 500, 500, 3725.0, "entries").endswith("done in 1:02:05")


def test_without_a_total_it_counts_and_gives_the_rate() -> None:
    assert render("redrive", 42, None, 2.0, "entries") == "redrive 42 entries  21.0 entries/s  0:02"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_only_and_cleared_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ticks = iter(float(t) for t in range(100))
    tty = Tty()
    with Progress("simulate", 4, unit="weeks", out=tty, clock=lambda: next(ticks)) as bar:
        bar.advance()
        bar.note("week 1/4")
        bar.advance(3)
    drawn = tty.getvalue()
    assert "1/4 weeks" in drawn and "4/4 weeks" in drawn and drawn.endswith("\r\033[K")
    assert capsys.readouterr().out == "week 1/4\n"

    piped = io.StringIO()
    with Progress("simulate", 4, out=piped) as bar:
        bar.advance(4)
    assert piped.getvalue() == ""
