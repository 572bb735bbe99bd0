"""The platform on a Redis that runs the generated ACL file: each service as its own user.

Lanes required: a trading engine is a machine client whose Redis user `create-client` made
(its lane only), operators' tools write the operators' lane as `operator`, a downstream
consumer reads the lifecycle stream as `lifecycle`; the default user is off.
"""

import asyncio
import base64
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
import redis
from cryptography.fernet import Fernet
from redis import asyncio as aioredis

import alluse_client
from shared.contracts.streams import ACL_ADMIN, Streams
from shared.infra.runtime.settings import Settings
from shared.infra.trust.signing import identity_env, new_identities
from shared.tooling.client import StreamClient
from shared.tooling.embedded import free_port
from tests.e2e.test_platform import Lifecycle, ce, token, wait_ready
from tests.support.acl import acl_redis, passwords
from tests.support.streams import entries, entries_sync, xadd_sync
from tests.support.waiting import until_sync

pytestmark = pytest.mark.slow
PREFIX = "acl."


@pytest.fixture
def platform(own_database: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ports = {name: free_port() for name in ("security", "account", "integration", "console")}
    with acl_redis(tmp_path / "redis", PREFIX, passwords(), admin=True) as urls:
        env = {
            **os.environ,
            "DATABASE_URL": own_database,
            "ALLUSE_STREAM_PREFIX": PREFIX,
            "ALLUSE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLUSE_AUDIT_KEYS": Fernet.generate_key().decode(),
            "ALLUSE_JWKS_URL": f"http://127.0.0.1:{ports['security']}/.well-known/jwks.json",
            "ALLUSE_TOKEN_URL": f"http://127.0.0.1:{ports['security']}/oauth/token",
            "ALLUSE_BLOCK_MS": "20",
            "ALLUSE_SECURITY_URL": f"http://127.0.0.1:{ports['security']}",
            "ALLUSE_LANES": "required",
        }
        procs, identities = [], identity_env(new_identities())
        try:
            for name, port in ports.items():
                log = tmp_path / f"{name}.log"
                own = {
                    **identities.get(name, {}),
                    "REDIS_URL": urls[name],
                    "ALLUSE_HTTP_PORT": str(port),
                }
                proc = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env={**env, **own},
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
                procs.append(proc)
                wait_ready(port, proc, log)
            # The security administration runs with the security service's own settings.
            admin = {
                **env,
                **identities["security"],
                "REDIS_URL": urls["security"],
                "ALLUSE_REDIS_ADMIN_URL": urls[ACL_ADMIN],
                "ALLUSE_REDIS_ACL_FILE": urls["acl-file"],
            }
            yield {
                "env": admin,
                "tmp": tmp_path,
                "urls": urls,
                "logs": [tmp_path / f"{n}.log" for n in ports],
            }
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                assert proc.wait(20) == 0, "a service did not stop cleanly on SIGTERM"


def test_every_service_works_as_its_own_acl_user(
    platform: dict[str, Any], settings: Settings
) -> None:
    urls = platform["urls"]
    engine_url, engine_token = engine_client(platform, urls["security"])
    operator, engine = redis.Redis.from_url(urls["operator"]), redis.Redis.from_url(engine_url)
    life = Lifecycle(redis.Redis.from_url(urls["lifecycle"]), f"{PREFIX}alluse.account.lifecycle")
    bearer = "Bearer " + token(platform, f"ops-{uuid.uuid4().hex[:6]}")
    init = ce(
        "alluse.system.initialize",
        {"total_capital": "250000.00", "template": "moderate"},
        "ops/tool",
        authorization=bearer,
    )
    xadd_sync(operator, f"{PREFIX}{{{PREFIX}alluse.account.commands}}.lane.operator", init)
    events = life.until(lambda es: sum(e["type"] == "alluse.account.created" for e in es) == 3)
    gen = next(
        e["data"]["account"]["id"]
        for e in events
        if e["type"] == "alluse.account.created" and e["data"]["account"]["type"] == "generation"
    )
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
    fill_event = ce(
        "ws4.trade.filled",
        fill,
        "ws4/gateway-1",
        subject=gen,
        authorization=f"Bearer {engine_token}",
    )
    xadd_sync(engine, f"{PREFIX}{{{PREFIX}ws4.market.events}}.lane.engine-1", fill_event)
    events = life.until(lambda es: any(e["type"] == "alluse.account.balance_changed" for e in es))
    moved = next(e for e in events if e["type"] == "alluse.account.balance_changed")
    assert moved["data"]["transaction"]["amount"] == "643.05"
    with pytest.raises(redis.exceptions.NoPermissionError):  # an engine cannot forge an effect
        xadd_sync(engine, f"{PREFIX}alluse.internal.account.effects", fill_event)
    with pytest.raises(redis.exceptions.NoPermissionError):  # nor touch the shared stream
        engine.xadd(f"{PREFIX}ws4.market.events", {"x": "y"}, maxlen=0)
    outcomes = entries_sync(engine, f"{PREFIX}alluse.outcomes.engine-1")  # its fill's outcome
    assert [f[b"type"] for _, f in outcomes] == [b"alluse.entry.applied"], outcomes
    # A forged audit record (no signature) is refused, and the refusal itself audited.
    forged = ce("alluse.audit.recorded", {"action": "x", "actor": "y"}, "alluse/account-service")
    account = redis.Redis.from_url(urls["account"])
    xadd_sync(account, f"{PREFIX}alluse.audit", forged)
    account.close()
    until_sync(
        lambda: operator.xrange(f"{PREFIX}alluse.audit.dlq"),
        timeout=20,
        what="the forged audit record's dead letter",
    )
    # The operator's CLI as the operator user; the security administration as the security one.
    as_operator = {**platform["env"], "REDIS_URL": urls["operator"], "ALLUSE_TOKEN": bearer[7:]}
    for argv, env in (
        (["deposit", gen, "100.00"], as_operator),
        (["list"], as_operator),
        (["security", "verify-audit"], platform["env"]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "--json", *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    # The console's own Redis work (a query, its reply, the lifecycle feed) as the console user.
    asyncio.run(console_reads(urls["console"], bearer[7:], gen, platform["env"]["ALLUSE_JWKS_URL"]))
    for log in platform["logs"]:  # no service was refused anything it needed
        assert "NOPERM" not in log.read_text(), log.read_text()[-3000:]
    for client in (operator, engine, life.redis):
        client.close()


async def console_reads(url: str, token: str, account_id: str, jwks: str) -> None:
    as_console = aioredis.Redis.from_url(url)
    try:
        client = StreamClient(
            as_console,
            Streams(PREFIX),
            token,
            keys=alluse_client.KeySet.from_url(jwks),
            lane="console",
        )
        shown = await client.query("alluse.query.account", {"account_id": account_id})
        assert shown["id"] == account_id
        assert await as_console.xrevrange(f"{PREFIX}alluse.account.lifecycle", count=1)
        with pytest.raises(redis.exceptions.NoPermissionError):  # no dead letters for it
            await entries(as_console, f"{PREFIX}alluse.account.commands.dlq")
    finally:
        await as_console.aclose()


def engine_client(platform: dict[str, Any], security_url: str) -> tuple[str, str]:
    """A trading engine made with `alluse security create-client`: its Redis URL (the user
    made for it) and a token fetched with its client credentials."""
    # The whole platform's scope (docs/scopes.md): the test's portfolio is made after it.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "--json",
            "security",
            "create-client",
            "--client-id",
            "engine-1",
            "--role",
            "trading_engine",
            "--portfolio",
            "*",
        ],
        env=platform["env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    host = security_url.rsplit("@", 1)[1]
    url = f"redis://{made['redis_user']}:{made['redis_password']}@{host}"
    body = urllib.parse.urlencode({"grant_type": "client_credentials"}).encode()
    request = urllib.request.Request(platform["env"]["ALLUSE_TOKEN_URL"], data=body)
    pair = base64.b64encode(f"engine-1:{made['client_secret']}".encode()).decode()
    request.add_header("Authorization", f"Basic {pair}")
    with urllib.request.urlopen(request, timeout=10) as r:
        return url, str(json.loads(r.read())["access_token"])
