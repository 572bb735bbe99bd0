"""The whole platform as an ops team runs it: three service processes, real Redis and PostgreSQL.

Everything outside the services is what another team would write: plain redis-py XADD/XREAD,
an HTTP token request, and the `alluse` CLI for the first admin.
"""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from redis import Redis

from shared.contracts import lifecycle
from shared.infra.runtime.settings import Settings
from shared.infra.trust.signing import identity_env, new_identities
from shared.tooling.embedded import free_port
from tests.support.streams import entries_sync, read_sync, xadd_sync
from tests.support.waiting import until_sync

pytestmark = pytest.mark.slow
PASSWORD = "E2e-" + uuid.uuid4().hex[:12] + "!"


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]  # it died: no use waiting
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:  # not listening yet, or 503 while it starts
            return False

    until_sync(ready, timeout=60, what=f"/readyz on {port} (log: {log})")


@pytest.fixture
def platform(settings: Settings, own_database: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ports = {name: free_port() for name in ("security", "account", "integration")}
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": own_database,
        "ALLUSE_STREAM_PREFIX": settings.stream_prefix,
        "ALLUSE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLUSE_AUDIT_KEYS": Fernet.generate_key().decode(),
        "ALLUSE_AUDIT_HEAD_EVERY": "1",
        "ALLUSE_JWKS_URL": f"http://127.0.0.1:{ports['security']}/.well-known/jwks.json",
        "ALLUSE_TOKEN_URL": f"http://127.0.0.1:{ports['security']}/oauth/token",
        "ALLUSE_BLOCK_MS": "20",
    }
    procs = []
    own = identity_env(new_identities())
    try:
        for name, port in ports.items():
            log = tmp_path / f"{name}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env={**env, **own[name], "ALLUSE_HTTP_PORT": str(port)},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            procs.append(proc)
            wait_ready(port, proc, log)
        yield {"env": env, "ports": ports, "tmp": tmp_path}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            assert proc.wait(20) == 0, "a service did not stop cleanly on SIGTERM"


def token(platform: dict[str, Any], username: str) -> str:
    """The first admin is made with the CLI (password from a file), then logs in over HTTP."""
    pw = platform["tmp"] / "pw"
    pw.write_text(PASSWORD)
    cli = [
        sys.executable,
        "-m",
        "services.cli",
        "security",
        "create-admin",
        "--username",
        username,
        "--password-file",
        str(pw),
    ]
    done = subprocess.run(cli, env=platform["env"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    body = urllib.parse.urlencode(
        {"grant_type": "password", "username": username, "password": PASSWORD}
    ).encode()
    with urllib.request.urlopen(platform["env"]["ALLUSE_TOKEN_URL"], data=body, timeout=10) as r:
        return str(json.loads(r.read())["access_token"])


def ce(type_: str, data: dict[str, Any], source: str, **attrs: str) -> dict[str, str]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": source,
        "type": type_,
        "time": "2026-11-26T15:00:00Z",
        **attrs,
        "data": json.dumps(data),
    }


class Lifecycle:
    """A downstream consumer: plain XREAD on the public stream, dedupe by (source, id)."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key
        self.last: str | bytes = "0"
        self.seen: dict[tuple[str, str], dict[str, Any]] = {}

    def until(self, check: Any, timeout: float = 20) -> list[dict[str, Any]]:
        """Reads on until the events seen so far satisfy `check`; returns them all."""

        def read() -> list[dict[str, Any]]:
            for _, entries in read_sync(self.redis, {self.key: self.last}, count=500, block=200):
                for entry_id, fields in entries:
                    self.last = entry_id
                    event = {k.decode(): v.decode() for k, v in fields.items()}
                    event["data"] = json.loads(event["data"])
                    self.seen[(event["source"], event["id"])] = event
            return list(self.seen.values())

        return until_sync(read, check, timeout=timeout, what="the lifecycle stream")


def test_upstream_events_flow_to_the_public_lifecycle_stream(
    platform: dict[str, Any], settings: Settings
) -> None:
    s = settings.streams
    redis = Redis.from_url(settings.redis_url)
    bearer = "Bearer " + token(platform, f"ops-{uuid.uuid4().hex[:6]}")
    life = Lifecycle(redis, s.key("alluse.account.lifecycle"))

    init = ce(
        "alluse.system.initialize",
        {"total_capital": "250000.00", "template": "moderate"},
        "ops/tool",
        authorization=bearer,
    )
    xadd_sync(redis, s.key("alluse.account.commands"), init)
    events = life.until(lambda es: sum(e["type"] == "alluse.account.created" for e in es) == 3)
    accounts = {
        e["data"]["account"]["type"]: e["data"]["account"]
        for e in events
        if e["type"] == "alluse.account.created"
    }
    gen = accounts["generation"]["id"]
    # Only the initialization's effects here (a scheduler may announce its own work too).
    assert [e["type"] for e in events if e.get("causationid") == init["id"]].count(
        "alluse.account.created"
    ) == 3

    week = ce(
        "ws2.week.classified",
        {"week_start": "2026-11-23", "week_type": "P-EW", "confidence": "0.9"},
        "ws2/engine",
        authorization=bearer,  # an admin may publish upstream entries, as a trading engine may
    )
    xadd_sync(redis, s.key("ws2.protocol.events"), week)
    life.until(lambda es: any(e["type"] == "alluse.week.changed" for e in es))
    fill = {
        "fill_id": "f-1",
        "order_id": "o-1",
        "account_id": gen,
        "symbol": "NVDA",
        "instrument_type": "option",
        "option_type": "put",
        "strike": "120.00",
        "delta": "-0.45",
        "side": "sell_to_open",
        "quantity": 3,
        "price": "2.15",
        "multiplier": 100,
        "commission": "1.95",
        "filled_at": "2026-11-26T15:00:00Z",
    }
    first = ce("ws4.trade.filled", fill, "ws4/gateway-1", subject=gen, authorization=bearer)
    xadd_sync(redis, s.key("ws4.market.events"), first)
    xadd_sync(redis, s.key("ws4.market.events"), first)  # delivered twice by a retrying producer
    xadd_sync(
        redis,
        s.key("ws4.market.events"),
        ce("ws4.trade.filled", {**fill, "price": "9.99"}, "ws4/gateway-1", authorization=bearer),
    )
    assignment = {
        "assignment_id": "as-1",
        "account_id": gen,
        "symbol": "NVDA",
        "option_type": "put",
        "strike": "120.00",
        "contracts": 1,
        "multiplier": 100,
    }
    assigned = ce("ws4.option.assigned", assignment, "ws4/gateway-1", authorization=bearer)
    xadd_sync(redis, s.key("ws4.market.events"), assigned)

    def settled(es: list[dict[str, Any]]) -> bool:
        return sum(e["type"] == "alluse.account.balance_changed" for e in es) == 2 and any(
            e["type"] == "alluse.command.rejected" for e in es
        )

    events = life.until(settled)
    moves = [e["data"] for e in events if e["type"] == "alluse.account.balance_changed"]
    assert [m["transaction"]["amount"] for m in moves] == [
        "643.05",
        "-12000.00",
    ]  # 3 x 2.15 x 100 - 1.95
    assert [m["balance"] for m in moves] == ["100643.05", "88643.05"]
    assert moves[0]["transaction"]["week_type"] == "P-EW"
    conflict = next(e for e in events if e["type"] == "alluse.command.rejected")
    assert conflict["data"]["code"] == "fill_conflict"
    premium = next(e for e in events if e["type"] == "alluse.account.balance_changed")
    assert premium["causationid"] == first["id"]
    for event in events:  # every public event honours its published schema
        assert event["dataschema"].endswith("/1.json")
        lifecycle.LIFECYCLE_TYPES[event["type"]].model_validate(event["data"])
    # The security service publishes its audit chain's head; the chain verifies against it.
    heads = until_sync(
        lambda: entries_sync(redis, s.key("alluse.audit.heads")),
        timeout=20,
        what="the audit chain head",
    )
    assert int(heads[-1][1][b"seq"]) >= 1
    assert '"msg": "audit chain head"' in (platform["tmp"] / "security.log").read_text()
    cli = [sys.executable, "-m", "services.cli", "--json", "security", "verify-audit"]
    done = subprocess.run(cli, env=platform["env"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "intact", done.stderr
    redis.close()
