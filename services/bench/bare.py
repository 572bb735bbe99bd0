"""The floor: the same work as an account creation with plain redis-py and asyncpg.

XREADGROUP a batch, one transaction inserting each entry's portfolio, account and initial
ledger row, then XADD each outcome and XACK the batch. No framework, no envelope model, no
inbox/outbox, no token check. Same tables as the service (its migrations, schema `bare`).
"""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.bench.measure import Entry, ReadReply
from shared.infra.runtime.db import migrate

SCHEMA = "bare"
GROUP = "bare"
# The account service's schema, from its migration files: the bench is a client and imports
# none of the service's modules.
MIGRATIONS = Path(__file__).resolve().parents[1] / "account" / "migrations"


async def prepare(dsn: str) -> dict[str, str]:
    """The bare schema, and the configuration the service stored for each account type (the
    service phase ran first, in the same database), so both write the same rows."""
    await migrate(dsn, SCHEMA, MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (type) type, config::text AS config FROM account.accounts"
        )
    finally:
        await conn.close()
    return {r["type"]: r["config"] for r in rows}


class BareLoop:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        *,
        commands: str,
        events: str,
        batch: int,
        configs: dict[str, str],
    ) -> None:
        self.pool, self.redis, self.batch = pool, redis, batch
        self.commands, self.events = commands, events
        self.stopping = False
        self.configs = configs

    async def run(self) -> None:
        try:
            await self.redis.xgroup_create(self.commands, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        while not self.stopping:
            reply = await self.redis.xreadgroup(
                GROUP, "bare-1", {self.commands: ">"}, count=self.batch, block=50
            )
            got = cast(ReadReply, reply)
            for _, entries in got or ():
                if entries:
                    await self.apply(entries)

    async def apply(self, entries: list[Entry]) -> None:
        portfolios, accounts, ledger, outcomes = [], [], [], []
        now = datetime.now(UTC).isoformat()
        for _, fields in entries:
            command_id = fields[b"id"].decode()
            data: dict[str, Any] = json.loads(fields[b"data"])
            portfolio_id, account_id = uuid.uuid4(), uuid.uuid4()
            balance = Decimal(data.get("initial_balance", "0"))
            name = data.get("name") or data["type"]
            portfolios.append((portfolio_id, name))
            accounts.append(
                (account_id, portfolio_id, data["type"], name, balance, self.configs[data["type"]])
            )
            if balance > 0:
                ledger.append((account_id, balance, command_id))
            account = {
                "id": str(account_id),
                "portfolio_id": str(portfolio_id),
                "type": data["type"],
                "status": "active",
                "name": name,
                "balance": str(balance),
            }
            outcomes.append(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "bench/bare",
                    "type": "alluse.account.created",
                    "time": now,
                    "datacontenttype": "application/json",
                    "subject": str(account_id),
                    "causationid": command_id,
                    "correlationid": command_id,
                    "data": json.dumps({"account": account}),
                }
            )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO portfolios (id, root_id, name) VALUES ($1, $1, $2)", portfolios
            )
            await conn.executemany(
                "INSERT INTO accounts (id, portfolio_id, type, status, name, balance, contributed,"
                " baseline, config) VALUES ($1, $2, $3, 'active', $4, $5, $5, $5, $6::jsonb)",
                accounts,
            )
            await conn.executemany(
                "INSERT INTO transactions (account_id, type, amount, balance_after, description,"
                " command_id) VALUES ($1, 'deposit', $2, $2, 'initial funding', $3)",
                ledger,
            )
        pipe = self.redis.pipeline(transaction=False)
        for outcome in outcomes:
            pipe.xadd(self.events, outcome)  # type: ignore[arg-type]
        pipe.xack(self.commands, GROUP, *(entry_id for entry_id, _ in entries))
        await pipe.execute()
