"""The client library's examples against the real services, as an integrator runs them.

The example engine publishes a week, fills, a retried fill and a conflicting one and sees each
outcome; the example consumer is killed with SIGKILL mid-stream twice (restarted once under
its own name, which reads its own pending entries first, once under a new one, which claims
the dead member's) and ends with every lifecycle event exactly once, each signature verified
by the integration service's published key and each entry valid against its JSON Schema; the
FastStream example does the same once. A copy of an entry and a forged entry are in the
stream: the copy is not applied twice, the forgery is refused.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from redis import Redis

from shared.infra.runtime.settings import Settings
from tests.e2e import test_platform as base
from tests.support.streams import Entry, entries_sync, xadd_sync
from tests.support.waiting import until_sync

pytestmark = pytest.mark.slow
platform = base.platform  # the three services as processes, as in test_platform.py
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "shared" / "client" / "examples"
SCHEMAS = ROOT / "shared" / "contracts" / "schemas" / "lifecycle"


def wait_for(
    check: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    timeout: float = 90,
) -> None:
    def done() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited before {what}: {log.read_text()[-3000:] if log else ''}")
        return check()

    until_sync(done, timeout=timeout, what=f"{what} (log: {log})")


def rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute(query).fetchall()
        except sqlite3.OperationalError:  # the example has not made its tables yet
            return []


def engine_client(platform: dict[str, Any]) -> tuple[str, Path]:
    client_id = f"ws4-example-{uuid.uuid4().hex[:6]}"
    # The whole platform (docs/scopes.md): the example classifies a week, which concerns every
    # portfolio, besides its fills.
    cli = [
        sys.executable,
        "-m",
        "services.cli",
        "--json",
        "security",
        "create-client",
        "--client-id",
        client_id,
        "--role",
        "trading_engine",
        "--portfolio",
        "*",
    ]
    done = subprocess.run(cli, env=platform["env"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    secret = platform["tmp"] / "engine.secret"
    secret.write_text(json.loads(done.stdout)["client_secret"])
    return client_id, secret


def initialize(redis: Redis, settings: Settings, bearer: str) -> str:
    """A portfolio, made by an admin as an operator would; returns its Gen-Acc."""
    s = settings.streams
    init = base.ce(
        "alluse.system.initialize",
        {"total_capital": "250000.00", "template": "moderate"},
        "ops/tool",
        authorization=bearer,
    )
    xadd_sync(redis, s.key("alluse.account.commands"), init)
    life = base.Lifecycle(redis, s.key("alluse.account.lifecycle"))
    events = life.until(lambda es: sum(e["type"] == "alluse.account.created" for e in es) == 3)
    return str(
        next(
            e["data"]["account"]["id"]
            for e in events
            if e["type"] == "alluse.account.created"
            and e["data"]["account"]["type"] == "generation"
        )
    )


def group_done(redis: Redis, stream: str, group: str) -> bool:
    """Every entry of the stream delivered to the group and acknowledged."""
    groups = {g["name"].decode(): g for g in redis.xinfo_groups(stream)}
    last = cast(list[Entry], redis.xrevrange(stream, count=1))[0][0]
    g = groups.get(group)
    return g is not None and g["pending"] == 0 and g["last-delivered-id"] == last


def test_examples_end_to_end_with_the_consumer_killed_mid_stream(
    platform: dict[str, Any], settings: Settings
) -> None:
    redis = Redis.from_url(settings.redis_url)
    prefix = settings.stream_prefix
    lifecycle = f"{prefix}alluse.account.lifecycle"
    bearer = "Bearer " + base.token(platform, f"ops-{uuid.uuid4().hex[:6]}")
    account = initialize(redis, settings, bearer)
    client_id, secret = engine_client(platform)
    # A platform with lanes registers each client's lane; before lanes, the shared streams.
    lane = client_id if redis.sismember(f"{prefix}alluse.lanes", client_id) else ""
    env = {
        **platform["env"],
        "ALLUSE_REDIS_URL": settings.redis_url,
        "ALLUSE_CLIENT_ID": client_id,
        "ALLUSE_CLIENT_SECRET_FILE": str(secret),
        "ALLUSE_LANE": lane,
    }

    run = [sys.executable, str(EXAMPLES / "engine.py"), account, "--fills", "8"]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    fills = [o for o in outcomes if o["type"] == "ws4.trade.filled"]
    assert [o["status"] for o in fills[:8]] == ["applied"] * 8, outcomes
    assert (fills[-1]["status"], fills[-1]["code"]) == ("refused", "fill_conflict"), outcomes
    if lane:
        assert fills[8]["status"] in ("applied", "duplicate"), outcomes  # the retried fill
    # The engine's effects are on the lifecycle stream: one premium per fill.
    premiums = [
        f
        for _, f in entries_sync(redis, lifecycle)
        if f[b"type"] == b"alluse.account.balance_changed" and b"trade_premium" in f[b"data"]
    ]
    # The retried fill's event is announced again under its own id (a replay, not a second
    # premium): the consumer's de-duplication by (source, id) is what keeps it single.
    assert len({p[b"id"] for p in premiums}) == 8, premiums

    # A producer's retry copied an entry, and someone forged one with a changed amount.
    published = entries_sync(redis, lifecycle)
    xadd_sync(redis, lifecycle, published[5][1])
    forged = dict(premiums[0])
    forged[b"data"] = forged[b"data"].replace(b"balance", b"balanc3")
    xadd_sync(redis, lifecycle, forged)
    expected = {
        (f[b"source"].decode(), f[b"id"].decode()) for _, f in entries_sync(redis, lifecycle)
    }
    expected.discard((forged[b"source"].decode(), forged[b"id"].decode()))
    expected.add((premiums[0][b"source"].decode(), premiums[0][b"id"].decode()))

    db = platform["tmp"] / "consumer.db"
    consumer_env = {
        **env,
        "ALLUSE_DB": str(db),
        "ALLUSE_GROUP": "example",
        "ALLUSE_HANDLER_DELAY_MS": "40",
        "ALLUSE_CLAIM_IDLE_MS": "500",
    }

    def start(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = platform["tmp"] / f"consumer-{name}-{time.monotonic_ns()}.log"
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "consumer.py")],
            env={**consumer_env, "ALLUSE_CONSUMER": name},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        return proc, log

    def received() -> int:
        return len(rows(db, "SELECT id FROM received"))

    proc, log = start("a")
    wait_for(lambda: received() >= 3, "received 3 events", proc, log)
    proc.send_signal(signal.SIGKILL)  # mid-stream: it holds read, unacknowledged entries
    proc.wait(10)
    assert redis.xpending(lifecycle, "example")["pending"] > 0
    halfway = received()
    assert halfway < len(expected)
    proc, log = start("a")  # the same member: its own pending entries first
    wait_for(lambda: received() >= halfway + 3, "received 3 more events", proc, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc, log = start("b")  # a new member: claims what "a" left pending once idle
    try:
        wait_for(lambda: group_done(redis, lifecycle, "example"), "consumed everything", proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)

    got = rows(db, "SELECT source, id, type, signer, data FROM received")
    assert len(got) == len({(r[0], r[1]) for r in got}), "an event was applied twice"
    assert {(r[0], r[1]) for r in got} == expected
    schemas = {f.stem: json.loads(f.read_text()) for f in SCHEMAS.glob("*.json")}
    for _, _, type_, signer, data in got:
        assert signer == "integration"
        jsonschema.validate(json.loads(data), schemas[type_])
    refused = rows(db, "SELECT why FROM refused")
    assert refused == [("signature: signature does not match the entry",)]

    # The FastStream example, killed once mid-stream and restarted, ends the same way.
    fdb = platform["tmp"] / "faststream.db"
    fenv = {
        **consumer_env,
        "ALLUSE_DB": str(fdb),
        "ALLUSE_GROUP": "faststream",
        "ALLUSE_CONSUMER": "fs-1",
    }
    flog = platform["tmp"] / "faststream.log"

    def fstart() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(EXAMPLES / "faststream_consumer.py")],
            env=fenv,
            stdout=flog.open("ab"),
            stderr=subprocess.STDOUT,
        )

    proc = fstart()
    wait_for(lambda: len(rows(fdb, "SELECT id FROM received")) >= 3, "3 events", proc, flog)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc = fstart()
    try:
        wait_for(lambda: group_done(redis, lifecycle, "faststream"), "consumed all", proc, flog)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    fgot = rows(fdb, "SELECT source, id, signer FROM received")
    assert len(fgot) == len({(r[0], r[1]) for r in fgot})
    assert {(r[0], r[1]) for r in fgot} == expected
    assert {r[2] for r in fgot} == {"integration"}
    redis.close()


def test_examples_are_documented_runnable_scripts() -> None:
    for name in ("engine.py", "consumer.py", "faststream_consumer.py"):
        code = (EXAMPLES / name).read_text()
        assert code.startswith('"""') and '__name__ == "__main__"' in code, name
    assert os.access(EXAMPLES / "engine.py", os.R_OK)
