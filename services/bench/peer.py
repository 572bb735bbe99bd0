"""The peer: a synchronous double-entry ledger in PostgreSQL, written the way a team without
streams would write it, measured in the same run as the platform so each platform figure can
be given as a ratio to it.

One transaction per transfer: lock both accounts' rows in id order (so two transfers between
the same pair never deadlock), refuse an overdraft, move the balances, and write the transfer
and its two ledger entries. N workers, each with its own connection, draw random pairs among
the accounts. Its own schema (`peer`) in the bench's database; nothing of the platform is used.
"""

import asyncio
import random
import time
from decimal import Decimal

import asyncpg

from services.bench.report import Result, progress

SCHEMA = "peer"
DDL = """
CREATE TABLE accounts (
    id int PRIMARY KEY,
    balance numeric(20, 2) NOT NULL CHECK (balance >= 0)
);
CREATE TABLE transfers (
    id bigserial PRIMARY KEY,
    from_id int NOT NULL REFERENCES accounts (id),
    to_id int NOT NULL REFERENCES accounts (id),
    amount numeric(20, 2) NOT NULL CHECK (amount > 0),
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE entries (
    transfer_id bigint NOT NULL REFERENCES transfers (id),
    account_id int NOT NULL REFERENCES accounts (id),
    amount numeric(20, 2) NOT NULL,
    balance_after numeric(20, 2) NOT NULL
);
CREATE INDEX ON entries (account_id);
"""
LOCK = "SELECT id, balance FROM accounts WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE"
MOVE = "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance"
TRANSFER = "INSERT INTO transfers (from_id, to_id, amount) VALUES ($1, $2, $3) RETURNING id"
ENTRY = (
    "INSERT INTO entries (transfer_id, account_id, amount, balance_after)"
    " VALUES ($1, $2, $3, $4), ($1, $5, $6, $7)"
)
OPENING = Decimal("1000000.00")


async def connect(dsn: str) -> asyncpg.Connection:
    """A connection that sees the peer's schema only (its statements name no schema)."""
    return await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})


async def prepare(dsn: str, accounts: int) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(DDL)
        await conn.executemany(
            "INSERT INTO accounts (id, balance) VALUES ($1, $2)",
            [(i, OPENING) for i in range(accounts)],
        )
    finally:
        await conn.close()


async def transfer(conn: asyncpg.Connection, source: int, target: int, amount: Decimal) -> bool:
    """One transfer, its own transaction; False if the source lacks the funds (nothing moved)."""
    async with conn.transaction():
        rows = await conn.fetch(LOCK, [source, target])
        balance = {r["id"]: r["balance"] for r in rows}
        if balance[source] < amount:
            return False
        out = await conn.fetchval(MOVE, source, -amount)
        into = await conn.fetchval(MOVE, target, amount)
        tid = await conn.fetchval(TRANSFER, source, target, amount)
        await conn.execute(ENTRY, tid, source, -amount, out, target, amount, into)
    return True


async def worker(
    conn: asyncpg.Connection,
    pairs: list[tuple[int, int]],
    latencies: list[float],
    refused: list[int],
) -> None:
    for source, target in pairs:
        started = time.perf_counter()
        if not await transfer(conn, source, target, Decimal("10.00")):
            refused.append(source)
        latencies.append((time.perf_counter() - started) * 1000)


async def run(dsn: str, *, count: int, workers: int, accounts: int) -> Result:
    """`count` transfers over `accounts` accounts by `workers` concurrent connections."""
    progress(
        f"peer: synchronous PostgreSQL ledger, {count} transfers, {workers} workers, "
        f"{accounts} accounts"
    )
    await prepare(dsn, accounts)
    rng = random.Random(11)  # noqa: S311
    pairs = [tuple(rng.sample(range(accounts), 2)) for _ in range(count)]
    shares: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
    for i, pair in enumerate(pairs):
        shares[i % workers].append((pair[0], pair[1]))
    latencies: list[float] = []
    refused: list[int] = []
    conns = [await connect(dsn) for _ in range(workers)]  # opened before the clock starts
    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(worker(c, share, latencies, refused) for c, share in zip(conns, shares, strict=True))
        )
        seconds = time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.close()
    await check(dsn, accounts, count - len(refused))
    return Result(
        f"peer: sync PG ledger ({workers} workers)",
        count,
        seconds,
        latencies,
        rejected=len(refused),
    )


async def check(dsn: str, accounts: int, applied: int) -> None:
    """Money is neither made nor lost, and every applied transfer has its two entries."""
    conn = await connect(dsn)
    try:
        total = await conn.fetchval("SELECT sum(balance) FROM accounts")
        entries = await conn.fetchval("SELECT count(*) FROM entries")
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        await conn.close()
    if total != OPENING * accounts or entries != 2 * applied:
        raise RuntimeError("peer ledger inconsistent: total {total}, {entries} entries")
