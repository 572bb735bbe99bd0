"""The platform unchanged on a Redis Cluster of three masters, one of them killed (SIGKILL) and
restarted from its AOF mid-run, then the busiest slot moved to another master: commands,
effects through the integration service, lifecycle events, queries and ordered partitions;
nothing lost, nothing doubled, each account in order."""

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from shared.contracts.envelope import new_event
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_LIFECYCLE, WS4_EVENTS
from shared.infra.runtime.redisclient import connect
from shared.infra.runtime.settings import Settings
from tests.support.cluster import LocalCluster, local_cluster, redis_server
from tests.support.platform import platform
from tests.support.streams import ce, decoded, entries, outcomes, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

ACCOUNTS, PAIRS = 20, 6  # 240 deposit-then-withdraw commands on accounts holding nothing


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    binary = redis_server()
    if binary is None:
        pytest.skip("redis-server is not installed: this test starts a Redis Cluster of its own")
    with local_cluster(tmp_path / "cluster", binary) as started:
        yield started


async def test_the_platform_on_a_redis_cluster_with_a_master_restarted(
    cluster: LocalCluster, settings: Settings, own_database: str, signer: Signer
) -> None:
    own = settings.model_copy(update={"redis_url": cluster.url, "database_url": own_database})
    s, redis = own.streams, connect(cluster.url)
    commands, lifecycle = s.key(ACCOUNT_COMMANDS), s.key(ACCOUNT_LIFECYCLE)
    async with platform(own, redis, signer) as p:  # a portfolio initialized, through lifecycle
        answer = await p.client.query("alluse.query.account", {"account_id": p.account})
        assert answer["data"]["id"] == p.account  # a query, answered on its reply stream

        fill = {
            "fill_id": f"f-{uuid.uuid4().hex}",
            "order_id": "o-1",
            "account_id": p.account,
            "symbol": "NVDA",
            "instrument_type": "option",
            "option_type": "put",
            "strike": "120.00",
            "delta": "-0.45",
            "side": "sell_to_open",
            "quantity": 3,
            "price": "2.15",
            "commission": "1.95",
            "filled_at": "2026-11-26T15:00:00Z",
        }
        upstream = new_event("ws4.trade.filled", "ws4/gateway-1", fill, subject=p.account)
        await xadd(
            redis,  # an engine's fill: integration -> effect -> account -> lifecycle
            s.key(WS4_EVENTS),
            {"authorization": signer.bearer("trading_engine"), **upstream},
        )
        caused = await outcomes(redis, lifecycle, upstream["id"], timeout=20)
        (premium,) = [e for e in caused if e["type"] == "alluse.account.balance_changed"]
        assert premium["data"]["transaction"]["amount"] == "643.05"  # 3 x 2.15 x 100 - 1.95

        admin = signer.bearer("admin")
        made = [
            ce("alluse.account.create", {"type": "revenue"}, authorization=admin)
            for _ in range(ACCOUNTS)
        ]
        for fields in made:
            await xadd(redis, commands, fields)
        accounts = []
        for fields in made:
            (created,) = await outcomes(redis, lifecycle, fields["id"], timeout=20)
            accounts.append(created["subject"])

        order: dict[str, list[str]] = {a: [] for a in accounts}  # each account's, as sent
        victim = cluster.owner(commands)  # the node of the router and the partitions
        for pair in range(PAIRS):
            if pair == PAIRS // 2:  # half written and being applied: that master dies
                cluster.kill(victim)
                cluster.start_node(victim)  # from its AOF: what it acknowledged is there
                # ... and the slot of the commands stream, its partitions and leases moves
                # to another master while they are read: every client follows ASK and MOVED.
                cluster.move(commands, to=(victim + 1) % len(cluster.ports))
                assert cluster.owner(s.beside(commands, ".p0")) != victim
            for account in accounts:
                for type_, amount in (("deposit", "100.00"), ("withdraw", "90.00")):
                    fields = ce(
                        f"alluse.account.{type_}",
                        {"amount": amount},
                        subject=account,
                        authorization=admin,
                    )
                    await xadd(redis, commands, fields)
                    order[account].append(fields["id"])

        sent = {i for ids in order.values() for i in ids}

        async def outcomes_seen() -> int:  # downstream dedupes by (source, id), as CONTRACT says
            once = {(e["source"], e["id"]): e for e in await read_all(redis, lifecycle)}
            return len({e["causationid"] for e in once.values()} & sent)

        await until(outcomes_seen, equals=len(sent), timeout=90)
        once = {(e["source"], e["id"]): e for e in await read_all(redis, lifecycle)}.values()
        assert not [e for e in once if e["type"] == "alluse.command.rejected"]  # no overdraft
        per_cause = Counter(e["causationid"] for e in once if e["causationid"] in sent)
        assert set(per_cause.values()) == {1}  # one balance_changed per command, nothing else

        conn = await asyncpg.connect(own_database, server_settings={"search_path": "account"})
        try:
            rows = await conn.fetch(
                "SELECT account_id::text AS account, command_id FROM transactions"
                " WHERE account_id = ANY($1::uuid[]) AND type IN ('deposit', 'withdrawal')"
                " ORDER BY id",
                accounts,
            )
        finally:
            await conn.close()
        ledger: dict[str, list[str]] = {a: [] for a in accounts}
        for row in rows:
            ledger[row["account"]].append(row["command_id"])
        assert ledger == order  # all applied, once each, in the order written
    await redis.aclose()


async def read_all(redis: Redis, stream: str) -> list[dict[str, Any]]:
    return [decoded(fields) for _, fields in await entries(redis, stream)]
