"""The ledger: reserved ids, batched rows, broker references claimed once, violations, business time."""

from datetime import datetime
from typing import Any
from uuid import UUID

from shared.infra.bulk import insert_rows
from shared.infra.unit import Sql


async def claim_ref(
    conn: Sql, *, kind: str, ref_id: str, account_id: UUID, fingerprint: str
) -> str:
    """'new' the first time a fill or assignment id is seen, 'duplicate' or 'conflict' after."""
    inserted = await conn.fetchval(
        "INSERT INTO trade_refs (kind, ref_id, account_id, fingerprint) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (kind, ref_id) DO NOTHING RETURNING true",
        kind, ref_id, account_id, fingerprint,
    )  # fmt: skip
    if inserted:
        return "new"
    prior = await conn.fetchval(
        "SELECT fingerprint FROM trade_refs WHERE kind = $1 AND ref_id = $2", kind, ref_id
    )
    return "duplicate" if prior == fingerprint else "conflict"


async def record_violations(
    conn: Sql,
    *,
    account_id: UUID,
    trade_ref: str | None,
    details: list[str],
    week_type: str | None,
    source: str,
) -> int:
    """Store the violations; returns the account's violation count after them."""
    await conn.executemany(
        "INSERT INTO violations (account_id, trade_ref, detail, week_type, source)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(account_id, trade_ref, d, week_type, source) for d in details],
    )
    return int(await conn.fetchval(
        "UPDATE accounts SET violations = violations + $2 WHERE id = $1 RETURNING violations",
        account_id, len(details),
    ))  # fmt: skip


async def set_effective_time(conn: Sql, *, at: datetime) -> None:
    """Business time of the rows this transaction writes next (see effective_now() in SQL)."""
    await conn.execute("SELECT set_config('alluse.effective_at', $1, true)", at.isoformat())


async def effective_now(conn: Sql) -> datetime:
    value: datetime = await conn.fetchval("SELECT effective_now()")
    return value


async def reserve_ledger_ids(conn: Sql, *, count: int) -> list[int]:
    """Ledger ids for a batch, ascending; unused ones leave harmless gaps."""
    rows = await conn.fetch(
        "SELECT nextval('transactions_id_seq') AS id FROM generate_series(1, $1)", count
    )
    return [int(r["id"]) for r in rows]


LEDGER_ROW = [("id", "bigint"), ("account_id", "uuid"), ("type", "text"), ("amount", "numeric"),
              ("balance_after", "numeric"), ("description", "text"), ("reference", "text"),
              ("week_type", "text"), ("command_id", "text"), ("effective_at", "timestamptz")]  # fmt: skip


async def insert_ledger(conn: Sql, *, rows: list[tuple[Any, ...]]) -> None:
    await insert_rows(conn, "transactions", LEDGER_ROW, rows)
