"""Two and three account service processes in one deployment, one killed mid-run: each
account's commands are still applied in the order they were written (README "Scaling out")."""

import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EVENTS
from shared.infra.runtime.settings import Settings
from shared.tooling.embedded import free_port
from shared.tooling.launch import Service
from tests.support.streams import ce, decoded, encodable, entries, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

pytestmark = pytest.mark.slow
PAIRS = 10  # deposit-then-withdraw pairs per account


async def created_count(probe: Callable[[], Awaitable[dict[str, str]]]) -> int:
    return len(await probe())


@pytest.fixture
def replicas(
    request: pytest.FixtureRequest,
    settings: Settings,
    own_database: str,
    signer: Signer,
    tmp_path: Path,
) -> Iterator[list[Service]]:
    """`request.param` processes, started one after the other."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": own_database,
        "ALLUSE_STREAM_PREFIX": settings.stream_prefix,
        "ALLUSE_JWKS_URL": signer.jwks_url,
        "ALLUSE_SIGNING_KEY": signer.seed("account").get_secret_value(),
        "ALLUSE_BLOCK_MS": "20",
        "ALLUSE_BATCH_SIZE": "50",  # small batches: the replicas interleave more
        "ALLUSE_PARTITION_LEASE_MS": "1500",  # a killed replica's partitions move on quickly
    }
    services = [
        Service(f"account-{i}", free_port(), env, tmp_path, "account") for i in range(request.param)
    ]
    try:
        for service in services:  # one after the other: the first one migrates the schema
            service.start()
            service.wait_ready()
        yield services
    finally:
        for service in services:
            service.stop()


# (replicas, accounts): 2,000 pairs on three replicas, 1,000 on two (one survivor after the kill).
@pytest.mark.parametrize(("replicas", "size"), [(2, 100), (3, 200)], indirect=["replicas"])
async def test_deposit_then_withdraw_never_overtakes_across_replicas(
    replicas: list[Service],
    size: int,
    settings: Settings,
    redis: Redis,
    signer: Signer,
    own_database: str,
) -> None:
    s = settings.streams
    commands, events = s.key(ACCOUNT_COMMANDS), s.key(ACCOUNT_EVENTS)
    token = signer.bearer("admin")
    ids = []
    for _ in range(size):  # accounts of their own, holding nothing
        fields = ce("alluse.account.create", {"type": "revenue"}, authorization=token)
        await xadd(redis, commands, fields)
        ids.append(fields["id"])

    async def created() -> dict[str, str]:
        found = [decoded(f) for _, f in await entries(redis, events)]
        return {
            e["causationid"]: e["subject"] for e in found if e["type"] == "alluse.account.created"
        }

    await until(lambda: created_count(created), equals=size, timeout=120)
    made = await created()
    accounts = [made[i] for i in ids]

    order: dict[str, list[str]] = {a: [] for a in accounts}  # each account's commands, as sent
    pipe = redis.pipeline(transaction=False)
    for pair in range(PAIRS):
        if pair == PAIRS // 2:  # half sent: one replica dies, no clean-up of any kind
            await pipe.execute()
            replicas[1].kill()
            pipe = redis.pipeline(transaction=False)
        for account in accounts:
            for type_, amount in (("deposit", "100.00"), ("withdraw", "90.00")):
                fields = ce(
                    f"alluse.account.{type_}",
                    {"amount": amount},
                    subject=account,
                    authorization=token,
                )
                pipe.xadd(commands, encodable(fields))
                order[account].append(fields["id"])
    await pipe.execute()

    conn = await asyncpg.connect(own_database, server_settings={"search_path": "account"})
    try:

        async def applied() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM transactions WHERE command_id IS NOT NULL AND type IN ('deposit', 'withdrawal')"
                )
            )

        async def rejected() -> list[dict[str, object]]:
            found = [decoded(f) for _, f in await entries(redis, events)]
            return [e["data"] for e in found if e["type"] == "alluse.command.rejected"]

        async def settled() -> int:  # every command applied or refused
            return await applied() + len(await rejected())

        await until(settled, equals=size * PAIRS * 2, timeout=240)
        assert await rejected() == []  # not one insufficient_funds
        rows = await conn.fetch(
            "SELECT account_id::text AS account, command_id FROM transactions"
            " WHERE type IN ('deposit', 'withdrawal') ORDER BY id"
        )
    finally:
        await conn.close()
    ledger: dict[str, list[str]] = {a: [] for a in accounts}
    for row in rows:
        ledger[row["account"]].append(row["command_id"])
    assert ledger == order  # every account's ledger in the order its commands were written
    assert json.dumps(sorted(r["command_id"] for r in rows)) == json.dumps(
        sorted(i for ids in order.values() for i in ids)
    )  # nothing doubled
