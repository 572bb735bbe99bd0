"""One client cannot starve the others (issue 18, finding 6), through the account service on
real Redis and PostgreSQL: per-client rate limits on commands and queries answered
`rate_limited`, a flood of costly queries held to its client's burst, and reply streams
capped per client. Every check waits for the answers it counts: never on time.

The buckets refill at 0.001 token/s here, so what a test admits is its burst, exactly.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from services.account.app import build
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_QUERIES
from shared.contracts.trust import reply_namespace
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from tests.support.account import Client
from tests.support.streams import ce, outcomes, reply
from tests.support.tokens import Signer

SLOW = 0.001  # tokens per second: nothing refills while a test runs


def limited(settings: Settings, **more: Any) -> Settings:
    return settings.model_copy(
        update={
            "rate_commands_per_second": SLOW,
            "rate_commands_burst": 3,
            "rate_queries_per_second": SLOW,
            "rate_queries_burst": 20,
            **more,
        }
    )


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Settings]:
    s = limited(settings, batch_size=8)
    async with running(await build(s)):
        yield s


def query(
    s: Settings, signer: Signer, type_: str, data: dict[str, Any], sub: str
) -> dict[str, str]:
    box = reply_namespace(s.streams.prefix, sub) + uuid.uuid4().hex
    token = signer.bearer("operator", sub=sub)
    return ce(type_, data, authorization=token, replyto=box)


async def test_a_clients_commands_beyond_its_burst_are_refused_rate_limited_and_others_pass(
    service: Settings, redis: Redis, signer: Signer
) -> None:
    s = service.streams
    admin = Client(redis, service, signer)
    gen = (await admin.initialize())["generation"]  # the admin's first command of three
    flood = signer.bearer("operator", sub="flood")
    sent = [
        ce("alluse.account.deposit", {"amount": "1.00"}, authorization=flood, subject=gen["id"])
        for _ in range(5)
    ]
    for fields in sent:
        await redis.xadd(s.key(ACCOUNT_COMMANDS), fields)  # type: ignore[arg-type]
    got = [(await outcomes(redis, admin.events, f["id"]))[0] for f in sent]
    codes = [e["data"].get("code") if e["type"] == "alluse.command.rejected" else "ok" for e in got]
    assert sorted(codes) == ["ok", "ok", "ok", "rate_limited", "rate_limited"], codes
    limited_ = next(e for e in got if e["data"].get("code") == "rate_limited")
    assert "retry in" in limited_["data"]["reason"]

    calm = signer.bearer("operator", sub="calm")  # another client: its own bucket
    other = ce("alluse.account.deposit", {"amount": "1.00"}, authorization=calm, subject=gen["id"])
    await redis.xadd(s.key(ACCOUNT_COMMANDS), other)  # type: ignore[arg-type]
    (done,) = await outcomes(redis, admin.events, other["id"])
    assert done["type"] == "alluse.account.balance_changed", done


async def test_a_flood_of_integrity_queries_gets_its_burst_and_the_others_query_is_answered(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    """Finding 6: 20,000 viewer `integrity` queries delayed an operator's query by 22 s. The
    flood is queued before the service starts, the operator's query behind all of it; the
    flood gets its burst's worth of ledger scans (20 tokens: two integrity queries at 10) and
    the rest is refused at once, without the database; the operator's query is answered."""
    s = limited(settings, batch_size=8)
    flood = [
        query(s, signer, "alluse.query.integrity", {}, "flood") for _ in range(40)
    ]  # five batches
    operator = query(s, signer, "alluse.query.summary", {}, "otto")
    for fields in [*flood, operator]:
        await redis.xadd(s.streams.key(ACCOUNT_QUERIES), fields)  # type: ignore[arg-type]
    async with running(await build(s)):
        answer = await reply(redis, operator["replyto"])
        answers = [await reply(redis, f["replyto"]) for f in flood]  # the barrier: all answered
    assert answer["type"] == "alluse.query.result", answer
    results = [a for a in answers if a["type"] == "alluse.query.result"]
    refused = [a["data"]["code"] for a in answers if a["type"] == "alluse.query.failed"]
    assert len(results) == 2 and refused == ["rate_limited"] * 38, (len(results), refused[:3])


async def test_reply_streams_are_capped_per_client_and_expire(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    """Finding 6: a flood left 20,000 reply streams for an hour. A client's reply streams beyond
    the cap go (oldest first), and each expires within the configured time."""
    s = limited(settings, replies_per_client=3, reply_ttl_seconds=120, rate_queries_burst=100)
    async with running(await build(s)):
        boxes = []
        for _ in range(5):
            fields = query(s, signer, "alluse.query.accounts", {}, "keeper")
            await redis.xadd(s.streams.key(ACCOUNT_QUERIES), fields)  # type: ignore[arg-type]
            assert (await reply(redis, fields["replyto"]))["type"] == "alluse.query.result"
            boxes.append(fields["replyto"])
        other = query(s, signer, "alluse.query.accounts", {}, "someone-else")
        await redis.xadd(s.streams.key(ACCOUNT_QUERIES), other)  # type: ignore[arg-type]
        await reply(redis, other["replyto"])  # the barrier: every earlier query is settled
    kept = [bool(await redis.exists(b)) for b in boxes]
    assert kept == [False, False, True, True, True]
    assert await redis.exists(other["replyto"])  # another client's is not its to evict
    for box in boxes[2:]:
        assert 0 < await redis.ttl(box) <= 120
