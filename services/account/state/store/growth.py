"""Growth (docs/rules.md sections 4-7): settings, forks, merges and quarterly reinvestments."""

import functools
import json
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from services.account.domain import (
    Account,
    TransactionType,
)
from services.account.domain.growth import ForkPlan
from services.account.domain.reinvest import Allocation as ReinvestAllocation
from services.account.domain.reinvest import Period
from services.account.domain.settings import (
    DEFAULT_SETTINGS,
    GrowthSettings,
    apply_settings,
    settings_to_dict,
)
from shared.infra.stream.unit import Sql


async def growth_settings(conn: Sql) -> GrowthSettings:
    raw = await conn.fetchval("SELECT settings FROM growth_settings")
    return DEFAULT_SETTINGS if raw is None else _parse_growth_settings(raw)


@functools.lru_cache(maxsize=8)
def _parse_growth_settings(raw: str) -> GrowthSettings:
    """Stored settings (with their template and strategy catalogs) parsed once per text."""
    return apply_settings(DEFAULT_SETTINGS, json.loads(raw))


async def save_growth_settings(conn: Sql, *, settings: GrowthSettings, command_id: str) -> None:
    await conn.execute(
        "INSERT INTO growth_settings (settings, command_id) VALUES ($1::jsonb, $2)"
        " ON CONFLICT (id) DO UPDATE SET settings = $1::jsonb, command_id = $2, updated_at = now()",
        json.dumps(settings_to_dict(settings)),
        command_id,
    )


async def fork_times(
    conn: Sql, *, account_id: UUID, root_id: UUID
) -> tuple[datetime | None, list[datetime]]:
    """The account's last fork, and the tree's forks of the last two days (for the guards)."""
    last = await conn.fetchval("SELECT max(at) FROM forks WHERE parent_account_id = $1", account_id)
    rows = await conn.fetch(
        "SELECT at FROM forks WHERE root_id = $1 AND at > effective_now() - interval '2 days'",
        root_id,
    )
    return last, [r["at"] for r in rows]


async def insert_fork(
    conn: Sql,
    *,
    child: UUID,
    parent_account: Account,
    root_id: UUID,
    plan: ForkPlan,
    automatic: bool,
    command_id: str,
) -> datetime:
    at: datetime = await conn.fetchval(
        "INSERT INTO forks (child_portfolio_id, parent_account_id, parent_portfolio_id, root_id,"
        " surplus, to_generation, to_compounding, baseline, automatic, command_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING at",
        child,
        parent_account.id,
        parent_account.portfolio_id,
        root_id,
        plan.surplus,
        plan.child_generation,
        plan.child_compounding,
        parent_account.baseline,
        automatic,
        command_id,
    )
    return at


async def merge_target(conn: Sql, *, portfolio_id: UUID) -> UUID | None:
    """The Com-Acc of the nearest ancestor that still has a live one (a merged parent is skipped)."""
    found: UUID | None = await conn.fetchval(
        "WITH RECURSIVE up AS (SELECT parent_id, 1 AS depth FROM portfolios WHERE id = $1"
        " UNION ALL SELECT p.parent_id, up.depth + 1 FROM portfolios p JOIN up ON p.id = up.parent_id)"
        " SELECT a.id FROM up JOIN accounts a ON a.portfolio_id = up.parent_id"
        " WHERE a.type = 'compounding' AND a.status NOT IN ('merged', 'closed')"
        " ORDER BY up.depth LIMIT 1",
        portfolio_id,
    )
    return found


async def insert_merge(
    conn: Sql,
    *,
    child: UUID,
    target: Account,
    total: Decimal,
    automatic: bool,
    command_id: str,
) -> datetime:
    at: datetime = await conn.fetchval(
        "INSERT INTO merges (child_portfolio_id, target_portfolio_id, target_account_id, total,"
        " automatic, command_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING at",
        child,
        target.portfolio_id,
        target.id,
        total,
        automatic,
        command_id,
    )
    return at


async def reinvesting_accounts(conn: Sql) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT id FROM accounts WHERE type IN ('revenue', 'compounding')"
        " AND status NOT IN ('closed', 'merged') ORDER BY id"
    )
    return [r["id"] for r in rows]


async def trading_rows(
    conn: Sql, *, account_id: UUID, start: datetime, end: datetime
) -> list[tuple[TransactionType, Decimal]]:
    rows = await conn.fetch(
        "SELECT type, amount FROM transactions WHERE account_id = $1"
        " AND type IN ('trade_premium', 'trade_assignment', 'trade_shares', 'fee')"
        " AND effective_at >= $2 AND effective_at < $3",
        account_id,
        start,
        end,
    )
    return [(TransactionType(r["type"]), r["amount"]) for r in rows]


async def insert_reinvestment(
    conn: Sql,
    *,
    account_id: UUID,
    period: Period,
    allocation: ReinvestAllocation,
    contracts_pct: Decimal,
    command_id: str,
) -> bool:
    """False when this account's quarter was reinvested already (by this or another replica)."""
    inserted = await conn.fetchval(
        "INSERT INTO reinvestments (account_id, quarter, period_start, period_end, net_income,"
        " contracts_pct, contracts_amount, leaps_amount, command_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (account_id, quarter) DO NOTHING RETURNING true",
        account_id,
        period.quarter,
        period.start,
        period.end,
        allocation.net_income,
        contracts_pct,
        allocation.contracts,
        allocation.leaps,
        command_id,
    )
    return bool(inserted)


async def reinvestment_done(conn: Sql, *, account_id: UUID, quarter: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT true FROM reinvestments WHERE account_id = $1 AND quarter = $2",
            account_id,
            quarter,
        )
    )
