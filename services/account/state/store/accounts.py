"""Accounts and portfolios: locked reads, the unit of work's batched inserts and updates."""

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import (
    Account,
    AccountConfig,
    AccountStatus,
    AccountType,
    apply_overrides,
    config_to_dict,
)
from shared.contracts.envelope import CloudEvent
from shared.infra.runtime.bulk import Statements
from shared.infra.stream import inbox
from shared.infra.stream.unit import Sql

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccountRow:
    """What the unit keeps of a locked account beside its aggregate (domain.Account): fields
    handlers read, which no rule of the domain decides on."""

    name: str
    parent_id: UUID | None  # of the account's portfolio: set in a forked child portfolio
    fork_eligible: bool  # announced fork-eligible, not forked since

    @classmethod
    def of(cls, record: Mapping[str, Any] | asyncpg.Record) -> "AccountRow":
        return cls(record["name"], record["parent_id"], record["fork_eligible"])


@dataclass(frozen=True, slots=True)
class PortfolioRow:
    """A portfolio as forks and merges read it: its place in its tree, and what a fork copies."""

    id: UUID
    parent_id: UUID | None  # None for a root portfolio
    root_id: UUID
    generation: int  # 0 for a root, one more than its parent's for a fork's portfolio
    name: str
    template: str | None
    strategy: str | None
    risk: dict[str, Any]  # the risk profile it was set up with

    @classmethod
    def of(cls, record: Mapping[str, Any] | asyncpg.Record) -> "PortfolioRow":
        risk = record["risk"]  # jsonb: text from a pool without a codec
        risk = json.loads(risk) if isinstance(risk, str) else risk
        return cls(
            id=record["id"],
            parent_id=record["parent_id"],
            root_id=record["root_id"],
            generation=record["generation"],
            name=record["name"],
            template=record["template"],
            strategy=record["strategy"],
            risk=dict(risk or {}),
        )


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


async def portfolio_types(conn: Sql, *, portfolio_id: UUID) -> set[str] | None:
    """The account types a portfolio already holds, or None if there is no such portfolio."""
    rows = await conn.fetch(
        "SELECT a.type FROM portfolios p LEFT JOIN accounts a ON a.portfolio_id = p.id"
        " WHERE p.id = $1 FOR UPDATE OF p",
        portfolio_id,
    )
    return None if not rows else {r["type"] for r in rows if r["type"]}


async def update_account(conn: Sql, *, account_id: UUID, name: str, config: AccountConfig) -> None:
    await conn.execute(
        "UPDATE accounts SET name = $2, config = $3::jsonb, updated_at = now() WHERE id = $1",
        account_id,
        name,
        json.dumps(config_to_dict(config)),
    )


async def set_status(conn: Sql, *, account_id: UUID, status: AccountStatus) -> None:
    await conn.execute(
        "UPDATE accounts SET status = $2, updated_at = now() WHERE id = $1",
        account_id,
        status.value,
    )


async def flag_fork_eligible(conn: Sql, *, account_id: UUID, eligible: bool) -> bool:
    """Set the crossing flag; True when it changed (a crossing in either direction)."""
    changed = await conn.fetchval(
        "UPDATE accounts SET fork_eligible = $2 WHERE id = $1 AND fork_eligible <> $2 RETURNING true",
        account_id,
        eligible,
    )
    return bool(changed)


async def get_portfolio(
    conn: Sql, *, portfolio_id: UUID, lock: bool = False
) -> PortfolioRow | None:
    row = await conn.fetchrow(
        "SELECT id, parent_id, root_id, generation, name, template, strategy, risk"
        " FROM portfolios WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        portfolio_id,
    )
    return None if row is None else PortfolioRow.of(row)


async def lock_portfolio_accounts(conn: Sql, *, portfolio_id: UUID) -> list[Account]:
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE portfolio_id = $1 ORDER BY id FOR UPDATE",
        portfolio_id,
    )
    return [to_account(r) for r in rows]


async def lock_live_accounts(conn: Sql, *, account_type: str | None) -> list[Row]:
    """Every account not closed or merged (of one type, if given), locked for a config change."""
    rows = await conn.fetch(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE status NOT IN ('closed', 'merged')"
        " AND ($1::text IS NULL OR type = $1) ORDER BY id FOR UPDATE",
        account_type,
    )
    return [dict(r) for r in rows]


LOCKED_COLUMNS = (
    "a.id, a.portfolio_id, a.type, a.status, a.name, a.balance, a.contributed, a.baseline,"
    " a.config, a.created_at, a.updated_at, a.fork_eligible, p.parent_id"
)


async def lock_with_ids(
    conn: Sql, *, account_ids: list[UUID], ids: int, seen: Sequence[CloudEvent] = ()
) -> tuple[list[tuple[Account, AccountRow]], list[int], inbox.Known]:
    """Accounts locked, in id order so that concurrent batches cannot deadlock, then `ids`
    ledger ids, ascending, as `ledger.reserve_ledger_ids` reserves them, and what the inbox
    knows of `seen` (`inbox.known`): in one round trip.
    The ids are drawn only once every lock is held (their count reads the locked rows): a batch
    that waited for a lock never books ids below rows another batch committed meanwhile, so an
    account's ledger stays in id order and a valuation's `id > valued_through` sees every flow.
    The inbox is read in the statement's snapshot, as a statement of its own before it would
    read it: a key applied by a batch committing meanwhile fails this batch's inbox row, and
    each entry is retried alone (shared/infra/stream/pipeline.py). What the batch reads of its
    accounts' state is read after this statement, in a snapshot taken with the locks held."""
    rows = await conn.fetch(
        f"WITH l AS MATERIALIZED (SELECT {LOCKED_COLUMNS} FROM accounts a"
        " JOIN portfolios p ON p.id = a.portfolio_id WHERE a.id = ANY($4::uuid[])"
        " ORDER BY a.id FOR UPDATE OF a),"
        " r AS (SELECT array_agg(n ORDER BY n) AS ids FROM (SELECT"
        " nextval('transactions_id_seq') AS n"
        " FROM generate_series(1, $5 + (SELECT 0 * count(*) FROM l)::int)) s)"
        f" SELECT r.ids, CASE WHEN row_number() OVER () = 1 THEN {inbox.KNOWN_ARRAY} END"
        " AS known, l.* FROM r LEFT JOIN l ON true",
        *inbox.keys_of(seen),
        account_ids,
        ids,
    )
    locked = [(to_account(r), AccountRow.of(r)) for r in rows if r["id"] is not None]
    known = inbox.known_from_records(rows[0]["known"])
    return locked, [int(i) for i in rows[0]["ids"]], known


def portfolio_values(
    *,
    at: datetime,
    tree: tuple[UUID | None, UUID | None, int],
    portfolio_id: UUID,
    name: str,
    template: str | None = None,
    strategy: str | None = None,
    risk: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    """`tree`: (parent, root, generation); a root portfolio is its own root, generation 0."""
    parent, root, generation = tree
    return (
        portfolio_id,
        parent,
        root or portfolio_id,
        generation,
        name,
        template,
        strategy,
        json.dumps(risk or {}),
        at,
    )


PORTFOLIO_ROW = [
    ("id", "uuid"),
    ("parent_id", "uuid"),
    ("root_id", "uuid"),
    ("generation", "integer"),
    ("name", "text"),
    ("template", "text"),
    ("strategy", "text"),
    ("risk", "jsonb"),
    ("created_at", "timestamptz"),
]


def insert_portfolios(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    out.insert("portfolios", PORTFOLIO_ROW, rows)


def account_values(
    account: Account, *, name: str, at: datetime, parent_id: UUID | None
) -> tuple[tuple[Any, ...], AccountRow]:
    config = config_json(account.config)
    values = (
        account.id,
        account.portfolio_id,
        account.type.value,
        account.status.value,
        name,
        account.balance,
        account.contributed_capital,
        account.baseline,
        config,
        at,
    )
    return values, AccountRow(name, parent_id, fork_eligible=False)


ACCOUNT_ROW = [
    ("id", "uuid"),
    ("portfolio_id", "uuid"),
    ("type", "text"),
    ("status", "text"),
    ("name", "text"),
    ("balance", "numeric"),
    ("contributed", "numeric"),
    ("baseline", "numeric"),
    ("config", "jsonb"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
]


def insert_accounts(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    """`rows` as account_values makes them; created and updated at the same time."""
    out.insert("accounts", ACCOUNT_ROW, [(*r, r[-1]) for r in rows])


SAVED_ROW = [
    ("id", "uuid"),
    ("balance", "numeric"),
    ("contributed", "numeric"),
    ("baseline", "numeric"),
    ("positions_value", "numeric"),
    ("peak", "numeric"),
    ("pct", "numeric"),
    ("breached", "boolean"),
    ("through", "bigint"),
    ("at", "timestamptz"),
    ("violations", "integer"),
]
_NO_VALUATION = (None,) * 6


def save_accounts(
    out: Statements,
    *,
    balances: Mapping[UUID, Account],
    valuations: Mapping[UUID, tuple[Any, ...]],
    violations: Mapping[UUID, int],
) -> None:
    """One UPDATE for every account of the batch, however many of its figures changed (each
    row is updated once, as one statement of several parts requires): the new balances, value
    states as save_value makes them (account, positions value, peak, drawdown %, breached,
    valued through, valued at) and violation counts; a figure not given is kept (NULL)."""
    ids = list(dict.fromkeys([*balances, *valuations, *violations]))
    if not ids:
        return
    rows = []
    for i in ids:
        a = balances.get(i)
        money = (None, None, None) if a is None else (a.balance, a.contributed_capital, a.baseline)
        valued = valuations.get(i)
        rows.append(
            (i, *money, *(_NO_VALUATION if valued is None else valued[1:]), violations.get(i))
        )
    names = ", ".join(n for n, _ in SAVED_ROW)
    arrays = out.arrays(SAVED_ROW, rows)
    out.add(
        "UPDATE accounts a SET balance = coalesce(n.balance, a.balance),"
        " contributed = coalesce(n.contributed, a.contributed),"
        " baseline = coalesce(n.baseline, a.baseline),"
        " updated_at = CASE WHEN n.balance IS NULL THEN a.updated_at ELSE now() END,"
        " positions_value = coalesce(n.positions_value, a.positions_value),"
        " peak_value = coalesce(n.peak, a.peak_value), drawdown_pct = coalesce(n.pct, a.drawdown_pct),"
        " drawdown_breached = coalesce(n.breached, a.drawdown_breached),"
        " valued_through = coalesce(n.through, a.valued_through),"
        " valued_at = coalesce(n.at, a.valued_at), violations = coalesce(n.violations, a.violations)"
        f" FROM unnest({arrays}) AS n ({names}) WHERE a.id = n.id"
    )
