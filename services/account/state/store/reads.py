"""Read-side: what queries and analytics read, never locked."""

from datetime import datetime
from uuid import UUID

from services.account.state.store.accounts import ACCOUNT_COLUMNS, Row
from shared.infra.stream.unit import Sql


async def get_account(conn: Sql, *, account_id: UUID) -> Row | None:
    row = await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)
    return None if row is None else dict(row)


async def list_accounts(
    conn: Sql,
    *,
    portfolio_id: UUID | None,
    account_type: str | None,
    status: str | None,
    after: UUID | None,
    limit: int,
    within: list[UUID] | None = None,
) -> list[Row]:
    """`within`: only accounts of these portfolios (None: every portfolio)."""
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ($1::uuid IS NULL OR portfolio_id = $1)"
        " AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR status = $3)"
        " AND ($4::uuid IS NULL OR id > $4)"
        " AND ($6::uuid[] IS NULL OR portfolio_id = ANY($6::uuid[])) ORDER BY id LIMIT $5",
        portfolio_id,
        account_type,
        status,
        after,
        limit,
        within,
    )
    return [dict(r) for r in rows]


async def history(
    conn: Sql,
    *,
    account_id: UUID,
    tx_type: str | None,
    before: int | None,
    limit: int,
    until: datetime | None = None,
) -> list[Row]:
    rows = await conn.fetch(
        "SELECT id, type, amount, balance_after, description, reference, week_type, command_id,"
        " created_at, effective_at, reverses FROM transactions WHERE account_id = $1"
        " AND ($2::text IS NULL OR type = $2) AND ($3::bigint IS NULL OR id < $3)"
        " AND ($5::timestamptz IS NULL OR effective_at <= $5) ORDER BY id DESC LIMIT $4",
        account_id,
        tx_type,
        before,
        limit,
        until,
    )
    return [dict(r) for r in rows]


async def summary(conn: Sql, *, within: list[UUID] | None = None) -> list[Row]:
    rows = await conn.fetch(
        "SELECT type, status, count(*) AS accounts, coalesce(sum(balance), 0) AS balance"
        " FROM accounts WHERE ($1::uuid[] IS NULL OR portfolio_id = ANY($1::uuid[]))"
        " GROUP BY type, status ORDER BY type, status",
        within,
    )
    return [dict(r) for r in rows]


async def portfolio_count(conn: Sql) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM portfolios"))


async def ledger_mismatches(conn: Sql) -> tuple[int, list[Row]]:
    """How many accounts were checked, and those whose balance is not the sum of their ledger."""
    rows = await conn.fetch(
        "SELECT a.id, a.balance, coalesce(t.total, 0) AS ledger FROM accounts a"
        " LEFT JOIN (SELECT account_id, sum(amount) AS total FROM transactions"
        " GROUP BY account_id) t ON t.account_id = a.id"
    )
    bad = [dict(r) for r in rows if r["balance"] != r["ledger"]]
    return len(rows), bad


async def reinvestments(conn: Sql, *, account_id: UUID) -> list[Row]:
    rows = await conn.fetch(
        "SELECT quarter, net_income, contracts_amount, leaps_amount, at FROM reinvestments"
        " WHERE account_id = $1 ORDER BY period_end",
        account_id,
    )
    return [dict(r) for r in rows]


async def balance_series(conn: Sql, *, account_ids: list[UUID]) -> list[Row]:
    """Every ledger row of the accounts in business-time order: (account, at, balance after).

    The balance is the running sum in business time, not the row's own `balance_after` (which is
    in arrival order): an entry that arrives late with an earlier time must not bend the series.
    """
    rows = await conn.fetch(
        "SELECT account_id, effective_at AS at, type, amount, week_type,"
        " sum(amount) OVER (PARTITION BY account_id ORDER BY effective_at, id) AS balance_after"
        " FROM transactions WHERE account_id = ANY($1::uuid[]) ORDER BY effective_at, id",
        account_ids,
    )
    return [dict(r) for r in rows]


async def trade_counts(conn: Sql, *, account_id: UUID) -> Row:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE type IN ('trade_premium', 'trade_assignment', 'trade_shares')) AS total,"
        " count(*) FILTER (WHERE type IN ('trade_premium', 'trade_assignment', 'trade_shares') AND amount > 0) AS successful,"
        " coalesce(sum(amount) FILTER (WHERE type = 'trade_premium' AND amount > 0), 0) AS premium,"
        " count(*) FILTER (WHERE type = 'trade_assignment' AND description LIKE '% assignment %') AS assignments,"
        " count(*) FILTER (WHERE type = 'trade_premium' AND amount < 0) AS adjustments,"
        " (SELECT violations FROM accounts WHERE id = $1) AS violations"
        " FROM transactions WHERE account_id = $1",
        account_id,
    )
    assert row is not None
    return dict(row)


async def tree(conn: Sql, *, portfolio_id: UUID) -> list[Row]:
    """The portfolio and every descendant, with fork and merge facts, parents first."""
    rows = await conn.fetch(
        "WITH RECURSIVE down AS (SELECT id FROM portfolios WHERE id = $1"
        " UNION ALL SELECT p.id FROM portfolios p JOIN down ON p.parent_id = down.id)"
        " SELECT p.id, p.parent_id, p.generation, p.name, p.created_at, f.at AS forked_at,"
        " f.surplus, m.at AS merged_at, m.total AS merged_total, m.target_account_id"
        " FROM down JOIN portfolios p USING (id) LEFT JOIN forks f ON f.child_portfolio_id = p.id"
        " LEFT JOIN merges m ON m.child_portfolio_id = p.id ORDER BY p.generation, f.at NULLS FIRST",
        portfolio_id,
    )
    return [dict(r) for r in rows]


async def tree_accounts(conn: Sql, *, portfolio_ids: list[UUID]) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE portfolio_id = ANY($1::uuid[]) ORDER BY id",
        portfolio_ids,
    )
    return [dict(r) for r in rows]
