"""Every SQL statement of the account service. Functions take the connection of the caller's
transaction and keyword-only arguments; they return domain objects or plain rows."""

import functools
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    BalanceChange,
    TransactionType,
    apply_overrides,
    config_to_dict,
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
from shared.infra.unit import Sql

Row = dict[str, Any]
ACCOUNT_COLUMNS = (
    "id, portfolio_id, type, status, name, balance, contributed, baseline, config,"
    " created_at, updated_at"
)


def to_account(row: Mapping[str, Any] | asyncpg.Record) -> Account:
    account_type = AccountType(row["type"])
    return Account(
        id=row["id"],
        portfolio_id=row["portfolio_id"],
        type=account_type,
        status=AccountStatus(row["status"]),
        balance=row["balance"],
        contributed_capital=row["contributed"],
        baseline=row["baseline"],
        config=stored_config(account_type, row["config"]),
    )


@functools.lru_cache(maxsize=1024)
def stored_config(account_type: AccountType, stored: str) -> AccountConfig:
    """Accounts share a few configurations: each stored one is parsed and validated once."""
    return apply_overrides(AccountConfig.for_type(account_type), json.loads(stored))


@functools.lru_cache(maxsize=1024)
def config_json(config: AccountConfig) -> str:
    return json.dumps(config_to_dict(config))


async def insert_portfolio(
    conn: Sql,
    *,
    portfolio_id: UUID,
    name: str,
    template: str | None = None,
    strategy: str | None = None,
    risk: dict[str, Any] | None = None,
    parent_id: UUID | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO portfolios (id, parent_id, root_id, generation, name, template, strategy, risk)"
        " SELECT $1, $2, coalesce(p.root_id, $1), coalesce(p.generation + 1, 0), $3, $4, $5, $6"
        " FROM (SELECT 1) one LEFT JOIN portfolios p ON p.id = $2",
        portfolio_id, parent_id, name, template, strategy, json.dumps(risk or {}),
    )  # fmt: skip


async def portfolio_types(conn: Sql, *, portfolio_id: UUID) -> set[str] | None:
    """The account types a portfolio already holds, or None if there is no such portfolio."""
    rows = await conn.fetch(
        "SELECT a.type FROM portfolios p LEFT JOIN accounts a ON a.portfolio_id = p.id"
        " WHERE p.id = $1 FOR UPDATE OF p",
        portfolio_id,
    )
    return None if not rows else {r["type"] for r in rows if r["type"]}


async def insert_account(conn: Sql, *, account: Account, name: str, command_id: str) -> Row:
    """A new account; its initial funding is a deposit row, so balance = sum of the ledger."""
    row = await conn.fetchrow(
        "WITH acc AS (INSERT INTO accounts"
        " (id, portfolio_id, type, status, name, balance, contributed, baseline, config)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7::jsonb)"
        f" RETURNING {ACCOUNT_COLUMNS}),"
        " tx AS (INSERT INTO transactions (account_id, type, amount, balance_after, description,"
        " command_id) SELECT $1, 'deposit', $6, $6, 'initial funding', $8 WHERE $6 > 0)"
        " SELECT * FROM acc",
        account.id, account.portfolio_id, account.type.value, account.status.value, name,
        account.balance, json.dumps(config_to_dict(account.config)), command_id,
    )  # fmt: skip
    assert row is not None
    return dict(row)


async def write_change(
    conn: Sql,
    *,
    effect: BalanceChange,
    description: str,
    command_id: str,
    reference: str | None = None,
    week_type: str | None = None,
) -> Row:
    """One ledger row and the account's new balance, in one statement."""
    row = await conn.fetchrow(
        "WITH tx AS (INSERT INTO transactions (account_id, type, amount, balance_after,"
        " description, reference, week_type, command_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, type, amount, balance_after,"
        " description, reference, week_type, created_at),"
        " acc AS (UPDATE accounts SET balance = $4, contributed = $9, baseline = $10,"
        " updated_at = now() WHERE id = $1)"
        " SELECT * FROM tx",
        effect.account_id, effect.type.value, effect.amount, effect.balance_after, description,
        reference, week_type, command_id, effect.contributed_after, effect.baseline_after,
    )  # fmt: skip
    assert row is not None
    return dict(row)


async def update_account(conn: Sql, *, account_id: UUID, name: str, config: AccountConfig) -> None:
    await conn.execute(
        "UPDATE accounts SET name = $2, config = $3::jsonb, updated_at = now() WHERE id = $1",
        account_id, name, json.dumps(config_to_dict(config)),
    )  # fmt: skip


async def set_status(conn: Sql, *, account_id: UUID, status: AccountStatus) -> None:
    await conn.execute(
        "UPDATE accounts SET status = $2, updated_at = now() WHERE id = $1",
        account_id,
        status.value,
    )


# Queries (read-only; no lock)


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
) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ($1::uuid IS NULL OR portfolio_id = $1)"
        " AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR status = $3)"
        " AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5",
        portfolio_id, account_type, status, after, limit,
    )  # fmt: skip
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
        account_id, tx_type, before, limit, until,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def summary(conn: Sql) -> list[Row]:
    rows = await conn.fetch(
        "SELECT type, status, count(*) AS accounts, coalesce(sum(balance), 0) AS balance"
        " FROM accounts GROUP BY type, status ORDER BY type, status"
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


# Trading effects


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


# Growth (sections 4-7): forks, merges, reinvestment, settings, analytics


async def set_effective_time(conn: Sql, *, at: datetime) -> None:
    """Business time of the rows this transaction writes next (see effective_now() in SQL)."""
    await conn.execute("SELECT set_config('alluse.effective_at', $1, true)", at.isoformat())


async def effective_now(conn: Sql) -> datetime:
    value: datetime = await conn.fetchval("SELECT effective_now()")
    return value


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
        json.dumps(settings_to_dict(settings)), command_id,
    )  # fmt: skip


async def flag_fork_eligible(conn: Sql, *, account_id: UUID, eligible: bool) -> bool:
    """Set the crossing flag; True when it changed (a crossing in either direction)."""
    changed = await conn.fetchval(
        "UPDATE accounts SET fork_eligible = $2 WHERE id = $1 AND fork_eligible <> $2 RETURNING true",
        account_id, eligible,
    )  # fmt: skip
    return bool(changed)


async def get_portfolio(conn: Sql, *, portfolio_id: UUID, lock: bool = False) -> Row | None:
    row = await conn.fetchrow(
        "SELECT id, parent_id, root_id, generation, name, template, strategy, risk, created_at"
        " FROM portfolios WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        portfolio_id,
    )
    return None if row is None else dict(row)


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
    conn: Sql, *, child: UUID, parent_account: Account, root_id: UUID,
    plan: ForkPlan, automatic: bool, command_id: str,
) -> datetime:  # fmt: skip
    at: datetime = await conn.fetchval(
        "INSERT INTO forks (child_portfolio_id, parent_account_id, parent_portfolio_id, root_id,"
        " surplus, to_generation, to_compounding, baseline, automatic, command_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING at",
        child, parent_account.id, parent_account.portfolio_id, root_id, plan.surplus,
        plan.child_generation, plan.child_compounding, parent_account.baseline, automatic, command_id,
    )  # fmt: skip
    return at


async def lock_portfolio_accounts(conn: Sql, *, portfolio_id: UUID) -> list[tuple[Account, Row]]:
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE portfolio_id = $1 ORDER BY id FOR UPDATE",
        portfolio_id,
    )
    return [(to_account(r), dict(r)) for r in rows]


async def merge_target(conn: Sql, *, portfolio_id: UUID) -> UUID | None:
    """The Com-Acc of the nearest ancestor that still has a live one (a merged parent is skipped)."""
    found: UUID | None = await conn.fetchval(
        "WITH RECURSIVE up AS (SELECT parent_id, 1 AS depth FROM portfolios WHERE id = $1"
        " UNION ALL SELECT p.parent_id, up.depth + 1 FROM portfolios p JOIN up ON p.id = up.parent_id)"
        " SELECT a.id FROM up JOIN accounts a ON a.portfolio_id = up.parent_id"
        " WHERE a.type = 'compounding' AND a.status NOT IN ('merged', 'closed')"
        " ORDER BY up.depth LIMIT 1",
        portfolio_id,
    )  # fmt: skip
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
        child, target.portfolio_id, target.id, total, automatic, command_id,
    )  # fmt: skip
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
        " AND type IN ('trade_premium', 'trade_assignment', 'fee')"
        " AND effective_at >= $2 AND effective_at < $3",
        account_id, start, end,
    )  # fmt: skip
    return [(TransactionType(r["type"]), r["amount"]) for r in rows]


async def insert_reinvestment(
    conn: Sql, *, account_id: UUID, period: Period, allocation: ReinvestAllocation,
    contracts_pct: Decimal, command_id: str,
) -> bool:  # fmt: skip
    """False when this account's quarter was reinvested already (by this or another replica)."""
    inserted = await conn.fetchval(
        "INSERT INTO reinvestments (account_id, quarter, period_start, period_end, net_income,"
        " contracts_pct, contracts_amount, leaps_amount, command_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (account_id, quarter) DO NOTHING RETURNING true",
        account_id, period.quarter, period.start, period.end, allocation.net_income, contracts_pct,
        allocation.contracts, allocation.leaps, command_id,
    )  # fmt: skip
    return bool(inserted)


async def reinvestment_done(conn: Sql, *, account_id: UUID, quarter: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM reinvestments WHERE account_id = $1 AND quarter = $2", account_id, quarter
    ))  # fmt: skip


async def reinvestments(conn: Sql, *, account_id: UUID) -> list[Row]:
    rows = await conn.fetch(
        "SELECT quarter, net_income, contracts_amount, leaps_amount, at FROM reinvestments"
        " WHERE account_id = $1 ORDER BY period_end",
        account_id,
    )
    return [dict(r) for r in rows]


async def balance_series(conn: Sql, *, account_ids: list[UUID]) -> list[Row]:
    """Every ledger row of the accounts in business-time order: (account, at, balance after)."""
    rows = await conn.fetch(
        "SELECT account_id, effective_at AS at, balance_after, type, amount, week_type"
        " FROM transactions WHERE account_id = ANY($1::uuid[]) ORDER BY effective_at, id",
        account_ids,
    )
    return [dict(r) for r in rows]


async def trade_counts(conn: Sql, *, account_id: UUID) -> Row:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE type IN ('trade_premium', 'trade_assignment')) AS total,"
        " count(*) FILTER (WHERE type IN ('trade_premium', 'trade_assignment') AND amount > 0) AS successful,"
        " coalesce(sum(amount) FILTER (WHERE type = 'trade_premium' AND amount > 0), 0) AS premium,"
        " count(*) FILTER (WHERE type = 'trade_assignment' AND description LIKE '% assignment %') AS assignments,"
        " count(*) FILTER (WHERE type = 'trade_premium' AND amount < 0) AS adjustments,"
        " (SELECT violations FROM accounts WHERE id = $1) AS violations"
        " FROM transactions WHERE account_id = $1",
        account_id,
    )  # fmt: skip
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
    )  # fmt: skip
    return [dict(r) for r in rows]


async def tree_accounts(conn: Sql, *, portfolio_ids: list[UUID]) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE portfolio_id = ANY($1::uuid[]) ORDER BY id",
        portfolio_ids,
    )
    return [dict(r) for r in rows]


async def lock_live_accounts(conn: Sql, *, account_type: str | None) -> list[Row]:
    """Every account not closed or merged (of one type, if given), locked for a config change."""
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE status NOT IN ('closed', 'merged')"
        " AND ($1::text IS NULL OR type = $1) ORDER BY id FOR UPDATE",
        account_type,
    )
    return [dict(r) for r in rows]


# Batched writes of one unit of work (services/account/uow.py)

LOCKED_COLUMNS = (
    "a.id, a.portfolio_id, a.type, a.status, a.name, a.balance, a.contributed, a.baseline,"
    " a.config, a.created_at, a.updated_at, a.fork_eligible, p.parent_id"
)


async def lock_accounts(conn: Sql, *, account_ids: list[UUID]) -> list[tuple[Account, Row]]:
    """Lock many accounts in one round trip, in id order so that concurrent batches cannot deadlock."""
    if not account_ids:
        return []
    rows = await conn.fetch(
        f"SELECT {LOCKED_COLUMNS} FROM accounts a JOIN portfolios p ON p.id = a.portfolio_id"
        " WHERE a.id = ANY($1::uuid[]) ORDER BY a.id FOR UPDATE OF a",
        account_ids,
    )
    return [(to_account(r), dict(r)) for r in rows]


async def reserve_ledger_ids(conn: Sql, *, count: int) -> list[int]:
    """Ledger ids for a batch, ascending; unused ones leave harmless gaps."""
    rows = await conn.fetch(
        "SELECT nextval('transactions_id_seq') AS id FROM generate_series(1, $1)", count
    )
    return [int(r["id"]) for r in rows]


def portfolio_values(
    *, at: datetime, portfolio_id: UUID, name: str, template: str | None = None,
    strategy: str | None = None, risk: dict[str, Any] | None = None,
) -> tuple[Any, ...]:  # fmt: skip
    return (portfolio_id, name, template, strategy, json.dumps(risk or {}), at)


async def insert_portfolios(conn: Sql, *, rows: list[tuple[Any, ...]]) -> None:
    """New top-level portfolios (forked ones are written by growth.py)."""
    await conn.executemany(
        "INSERT INTO portfolios (id, root_id, generation, name, template, strategy, risk, created_at)"
        " VALUES ($1, $1, 0, $2, $3, $4, $5::jsonb, $6)",
        rows,
    )


def account_values(
    account: Account, *, name: str, at: datetime, parent_id: UUID | None
) -> tuple[tuple[Any, ...], Row]:
    config = config_json(account.config)
    values = (
        account.id, account.portfolio_id, account.type.value, account.status.value, name,
        account.balance, account.contributed_capital, account.baseline, config, at,
    )  # fmt: skip
    row = dict(zip(
        ("id", "portfolio_id", "type", "status", "name", "balance", "contributed", "baseline", "config", "created_at"),
        values, strict=True,
    ))  # fmt: skip
    return values, {**row, "updated_at": at, "fork_eligible": False, "parent_id": parent_id}


async def insert_accounts(conn: Sql, *, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO accounts (id, portfolio_id, type, status, name, balance, contributed, baseline,"
        " config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $10)",
        rows,
    )


async def insert_ledger(conn: Sql, *, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO transactions (id, account_id, type, amount, balance_after, description,"
        " reference, week_type, command_id, effective_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rows,
    )


async def save_balances(conn: Sql, *, accounts: list[Account]) -> None:
    await conn.executemany(
        "UPDATE accounts SET balance = $2, contributed = $3, baseline = $4, updated_at = now()"
        " WHERE id = $1",
        [(a.id, a.balance, a.contributed_capital, a.baseline) for a in accounts],
    )
