"""Lanes under the generated ACL file, on Valkey: the account and integration services each as
their own Redis user, two engines each as its own (`client-<lane>`), the operators' tool as
`operator`. A second engine cannot block, erase, reorder or read the first's entries or
outcomes, whatever XADD's arguments; every engine reads every outcome of its own entries."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from services.account.app import build as build_account
from services.integration.app import build as build_integration
from shared.contracts.answers import ENTRY_APPLIED
from shared.contracts.streams import ACCOUNT_COMMANDS, OPERATOR_LANE, WS4_EVENTS
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.conftest import as_service
from tests.integration.test_integration_service import fill
from tests.support.acl import acl_redis, passwords
from tests.support.streams import ce, decoded, entries, read, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

ENGINES = ("engine-a", "engine-b")


@pytest.fixture
def urls(tmp_path: Path, settings: Settings) -> Iterator[dict[str, str]]:
    with acl_redis(tmp_path / "redis", settings.stream_prefix, passwords(), ENGINES) as found:
        yield found


async def outcomes_of(redis: Redis, key: str, entry_id: str) -> list[dict[str, Any]]:
    return [
        e for e in (decoded(f) for _, f in await entries(redis, key)) if e["data"]["id"] == entry_id
    ]


async def outcome(redis: Redis, key: str, entry_id: str) -> dict[str, Any]:
    async def count() -> int:
        return len(await outcomes_of(redis, key, entry_id))

    await until(count, equals=1, timeout=20)
    return (await outcomes_of(redis, key, entry_id))[0]


@pytest.fixture
async def acl(
    urls: dict[str, str], settings: Settings, signer: Signer
) -> AsyncIterator[dict[str, Any]]:
    base = settings.model_copy(update={"lanes": "required"})
    s = base.streams
    security = Redis.from_url(urls["security"])  # the administration registers the lanes
    await security.sadd(s.lanes, *ENGINES)
    await security.aclose()
    account = await build_account(base.model_copy(update={"redis_url": urls["account"]}))
    integration = await build_integration(
        as_service(base, signer, "integration").model_copy(
            update={"redis_url": urls["integration"]}
        ),
        schema=f"integration_{uuid.uuid4().hex[:8]}",
    )
    users = {name: Redis.from_url(urls[f"client-{name}"]) for name in ENGINES}
    users["operator"] = Redis.from_url(urls["operator"])
    async with running(account), running(integration):
        init = ce(
            "alluse.system.initialize",
            {"total_capital": "250000.00"},
            authorization=signer.bearer("admin"),
        )
        await xadd(users["operator"], s.lane(ACCOUNT_COMMANDS, OPERATOR_LANE), init)
        assert (await outcome(users["operator"], s.outcomes(OPERATOR_LANE), init["id"]))[
            "type"
        ] == ENTRY_APPLIED
        box = s.replies(OPERATOR_LANE) + uuid.uuid4().hex
        q = ce("alluse.query.accounts", {}, authorization=signer.bearer("admin"), replyto=box)
        await xadd(users["operator"], s.lane("alluse.account.queries", OPERATOR_LANE), q)
        got = await read(users["operator"], {box: "0-0"}, block=20_000)
        gen = next(
            a["id"]
            for a in decoded(got[0][1][0][1])["data"]["accounts"]
            if a["type"] == "generation"
        )
        yield {"users": users, "streams": s, "gen": gen, "signer": signer}
    for user in users.values():
        await user.aclose()


async def test_a_second_engine_can_neither_hurt_nor_read_the_firsts_lane(
    acl: dict[str, Any],
) -> None:
    users, s, gen, signer = acl["users"], acl["streams"], acl["gen"], acl["signer"]
    a, b = users["engine-a"], users["engine-b"]
    lane_a, lane_b = s.lane(WS4_EVENTS, "engine-a"), s.lane(WS4_EVENTS, "engine-b")
    # Engine B tries everything on engine A's lane, its outcomes and the shared stream.
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: b.xadd(lane_a, {"x": "y"}, maxlen=0),
        lambda: b.xadd(lane_a, {"x": "y"}, id="18446744073709551615-18446744073709551615"),
        lambda: b.xtrim(lane_a, maxlen=0),
        lambda: b.xrange(lane_a),
        lambda: b.delete(lane_a),
        lambda: b.xrange(s.outcomes("engine-a")),
        lambda: b.xadd(s.key(WS4_EVENTS), {"x": "y"}, maxlen=0),
        lambda: b.xadd(s.outcomes("engine-a"), {"x": "y"}),
    ]
    for attempt in attempts:
        with pytest.raises(NoPermissionError):
            await attempt()
    # What B may do to its own lane hurts only its lane: erased, then the end of the id space.
    await b.xadd(lane_b, {"x": "y"}, maxlen=0)
    await b.xadd(lane_b, {"x": "y"}, id="18446744073709551615-18446744073709551615")
    with pytest.raises(ResponseError):
        await b.xadd(lane_b, {"x": "y"})  # exhausted: B's own problem until the router resets it
    # A's fills, in order, each with its outcome, read by A.
    sent = []
    for _ in range(3):
        f = ce(
            "ws4.trade.filled",
            fill(gen),
            source="ws4/engine-a",
            authorization=signer.bearer("trading_engine", sub="engine-a"),
        )
        await xadd(a, lane_a, f)
        sent.append(f)
    for f in sent:
        got = await outcome(a, s.outcomes("engine-a"), f["id"])
        assert got["type"] == ENTRY_APPLIED and got["data"]["type"] == "ws4.trade.filled", got
    order = [
        e["data"]["id"] for e in (decoded(x) for _, x in await entries(a, s.outcomes("engine-a")))
    ]
    assert order == [f["id"] for f in sent]

    async def reset() -> bool:  # B's lane, drained by the router, takes B's entries again
        try:
            await b.xadd(lane_b, {"x": "y"})
        except ResponseError:
            return False
        return True

    await until(reset, equals=True, timeout=20)


async def test_the_redis_cli_examples_of_the_lanes_doc_work(
    acl: dict[str, Any], urls: dict[str, str]
) -> None:
    """docs/lanes.md: a query XADDed with redis-cli as the client's own Redis user, its answer
    and its outcome read back with redis-cli, its reply stream deleted."""
    s, signer = acl["streams"], acl["signer"]
    url = urls["client-engine-a"]
    token = signer.token("trading_engine", sub="engine-a")
    box = s.replies("engine-a") + "q-0001"

    async def cli(*argv: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "redis-cli",
            "-u",
            url,
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0 and b"NOPERM" not in out, (out, err)
        return out.decode()

    await cli(
        "XADD",
        s.lane("alluse.account.queries", "engine-a"),
        "*",
        "specversion",
        "1.0",
        "id",
        "q-0001",
        "source",
        "tools/engine-a",
        "type",
        "alluse.query.summary",
        "time",
        "2026-11-26T14:02:11Z",
        "datacontenttype",
        "application/json",
        "authorization",
        f"Bearer {token}",
        "replyto",
        box,
        "data",
        "{}",
    )
    assert "alluse.query.result" in await cli("XREAD", "BLOCK", "20000", "STREAMS", box, "0")
    outcomes = s.outcomes("engine-a")

    async def applied() -> bool:
        return "alluse.entry.applied" in await cli("XRANGE", outcomes, "-", "+")

    await until(applied, equals=True, timeout=20)
    assert (await cli("DEL", box)).strip() == "1"
