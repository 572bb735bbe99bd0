"""Every redis-cli command of the alert runbooks, run as written against a Redis started with the
generated ACL file: the `operator` user may run each, and each answers what the runbook says."""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from tests.support.acl import acl_redis, passwords

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "operators" / "runbooks.md"
ALERTS = ROOT / "deploy" / "observability" / "alerts.yml"
HOLDER = "alluse-account-7f9c-1-ab12cd"  # a consumer name, as Settings makes them


def commands() -> list[str]:
    """The generic form of each redis-cli line in the page's ```sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOKS.read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith('redis-cli -h "$REDIS_HOST"')]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = passwords()
    with acl_redis(tmp_path_factory.mktemp("runbooks"), "", env) as urls:
        # What a running account service leaves: a partition lease and the replicas' members.
        account = redis.Redis.from_url(urls["account"])
        account.set("{alluse.account.commands}.lease.p0", HOLDER, px=60_000)
        account.zadd("{alluse.account.commands}.members", {HOLDER: 1_765_000_000_000})
        account.close()
        where = urlsplit(urls["operator"])
        yield {
            "REDIS_HOST": where.hostname or "",
            "REDIS_PORT": str(where.port),
            "REDISCLI_AUTH": env["ALLUSE_REDIS_PASSWORD_OPERATOR"],
        }


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
@pytest.mark.parametrize("line", commands())
def test_each_runbook_command_runs_as_written_as_the_operator(
    server: dict[str, str], line: str
) -> None:
    written = line.replace("<partition>", "0")
    assert "<" not in written, f"a placeholder the test does not know: {line}"
    done = subprocess.run(
        ["bash", "-c", written], env={**os.environ, **server}, capture_output=True, text=True
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0 and not re.search(r"NOPERM|WRONGPASS|NOAUTH|^ERR", out, re.M), (
        f"{written}\n{out}"
    )
    if " GET " in written:
        assert out.strip() == HOLDER
    if " PTTL " in written:
        assert 0 < int(out) <= 60_000
    if "CLIENT LIST" in written:
        assert "user=operator" in out
    if " ZRANGE " in written:
        assert HOLDER in out


def test_the_runbooks_cover_each_alert_and_name_keys_that_exist() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    page = RUNBOOKS.read_text()
    assert len(commands()) >= 5
    for rule in rules:
        assert f"### {rule['alert']}" in page, rule["alert"]
        runbook = rule["annotations"]["runbook"]
        # A lease is `{<stream>}.lease.p<N>` (Streams.beside), read as the operator user.
        assert ".lease." not in runbook or (
            "{<stream>}.lease.p" in runbook and "--user operator" in runbook
        ), rule["alert"]
