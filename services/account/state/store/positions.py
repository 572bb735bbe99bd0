"""Every SQL statement of docs/rules.md section 11: positions and their history, quotes, account
values, reversals and the as-of reads. Functions take the caller's connection, keyword-only."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import TransactionType
from services.account.domain.marks import Quote, mark
from services.account.domain.money import ZERO
from services.account.domain.positions import Contract, Holding, Move
from services.account.domain.reversal import Entry
from services.account.state.store import ledger
from shared.infra.runtime.bulk import Statements
from shared.infra.stream.unit import Sql

Row = dict[str, Any]
CONTRACT = "contract, symbol, option_type, strike, expiration, multiplier"


def _holding(r: asyncpg.Record | Row, quantity: str = "quantity", cost: str = "cost") -> Holding:
    c = Contract(r["symbol"], r["option_type"], r["strike"], r["expiration"], r["multiplier"])
    return Holding(c, r[quantity], r[cost])


async def marked_holdings(conn: Sql, *, account_id: UUID) -> tuple[list[Holding], dict[str, Quote]]:
    """The account's positions with the latest quote of each, in one round trip."""
    rows = await conn.fetch(
        f"SELECT {CONTRACT}, quantity, cost, q.bid, q.ask, q.last FROM positions p"
        " LEFT JOIN LATERAL (SELECT bid, ask, last FROM quotes WHERE quotes.symbol = p.contract"
        " ORDER BY day DESC LIMIT 1) q ON true WHERE account_id = $1"
        " ORDER BY option_type NULLS FIRST, symbol, expiration, strike",
        account_id,
    )
    quotes = {
        r["contract"]: Quote(r["bid"], r["ask"], r["last"]) for r in rows if r["bid"] is not None
    }
    return [_holding(r) for r in rows], quotes


async def positions_values(conn: Sql, *, account_ids: list[UUID]) -> dict[UUID, Decimal]:
    """Each account's positions at their latest quotes (at cost without one), in one query:
    what `marked_holdings` + marks.mark give, summed per account."""
    rows = await conn.fetch(
        f"SELECT account_id, {CONTRACT}, quantity, cost, q.bid, q.ask, q.last FROM positions p"
        " LEFT JOIN LATERAL (SELECT bid, ask, last FROM quotes WHERE quotes.symbol = p.contract"
        " ORDER BY day DESC LIMIT 1) q ON true WHERE account_id = ANY($1::uuid[])",
        account_ids,
    )
    out: dict[UUID, Decimal] = {}
    for r in rows:
        quote = None if r["bid"] is None else Quote(r["bid"], r["ask"], r["last"])
        out[r["account_id"]] = out.get(r["account_id"], ZERO) + mark(_holding(r), quote).value
    return out


async def holdings(conn: Sql, *, account_id: UUID) -> list[Holding]:
    """Everything the account holds now (no quotes: what a fork or a merge moves or keeps)."""
    rows = await conn.fetch(
        f"SELECT {CONTRACT}, quantity, cost FROM positions WHERE account_id = $1"
        " ORDER BY option_type NULLS FIRST, symbol, expiration, strike",
        account_id,
    )
    return [_holding(r) for r in rows]


def _valued(ids: str) -> str:
    """What valuing the accounts whose ids are the parameter `ids` needs: a row per position
    (one without a position for an account that holds none) with its latest quote, beside the
    account's drawdown peak and state, its violation count, and the money moved in or out since
    the peak was last brought up to date (with the last ledger id that covers)."""
    return (
        "SELECT a.id AS account_id, a.peak_value, a.drawdown_breached, a.violations,"
        " coalesce(f.flows, 0) AS flows, coalesce(f.through, a.valued_through) AS through,"
        f" {', '.join('p.' + c for c in CONTRACT.split(', '))}, p.quantity, p.cost,"
        " q.bid, q.ask, q.last FROM accounts a LEFT JOIN LATERAL (SELECT sum(amount) FILTER"
        " (WHERE type IN ('deposit', 'withdrawal', 'fork_transfer', 'merge_transfer')) AS flows,"
        " max(id) AS through FROM transactions t WHERE t.account_id = a.id"
        " AND t.id > a.valued_through) f ON true"
        " LEFT JOIN positions p ON p.account_id = a.id LEFT JOIN LATERAL (SELECT bid, ask, last"
        " FROM quotes WHERE quotes.symbol = p.contract ORDER BY day DESC LIMIT 1) q ON true"
        f" WHERE a.id = ANY({ids}::uuid[])"
    )


async def valued(conn: Sql, *, account_ids: list[UUID]) -> list[asyncpg.Record]:
    """What valuing the accounts needs, in one round trip (`_valued`)."""
    return await conn.fetch(_valued("$1"), account_ids)


async def valued_and_claimed(
    conn: Sql, *, account_ids: list[UUID], refs: list[ledger.Ref]
) -> tuple[list[asyncpg.Record], ledger.Claims]:
    """`valued` and `ledger.claimed_refs` in one round trip: the rows of the one, and the
    other's claims (the first row carries them; there is always one)."""
    rows = await conn.fetch(
        f"SELECT v.*, CASE WHEN row_number() OVER () = 1 THEN {ledger.CLAIMED} END AS claimed"
        f" FROM (SELECT 1) AS one LEFT JOIN ({_valued('$4')}) AS v ON true",
        *ledger.claim_args(refs),
        account_ids,
    )
    return [r for r in rows if r["account_id"] is not None], ledger.claims_from(rows[0]["claimed"])


def holding_of(row: asyncpg.Record) -> Holding:
    return _holding(row)


# The unit of work's batched writes of section 11: each is one pipelined statement per batch.


MOVE_ROW = [
    ("account_id", "uuid"),
    ("contract", "text"),
    ("symbol", "text"),
    ("option_type", "text"),
    ("strike", "numeric"),
    ("expiration", "date"),
    ("multiplier", "integer"),
    ("quantity", "integer"),
    ("cost", "numeric"),
    ("quantity_after", "integer"),
    ("cost_after", "numeric"),
    ("transaction_id", "bigint"),
    ("cause", "text"),
    ("reference", "text"),
    ("command_id", "text"),
    ("effective_at", "timestamptz"),
]
POSITION_ROW = [*MOVE_ROW[:9], ("updated_at", "timestamptz")]
CLOSED_ROW = MOVE_ROW[:2]
VALUE_ROW = [
    ("account_id", "uuid"),
    ("cash", "numeric"),
    ("positions_value", "numeric"),
    ("broker_value", "numeric"),
    ("flow", "numeric"),
    ("by_quote", "boolean"),
    ("effective_at", "timestamptz"),
]


def insert_moves(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    """History rows, as `move_row` makes them."""
    out.insert("position_moves", MOVE_ROW, rows)


def save_positions(
    out: Statements, *, held: dict[tuple[UUID, str], tuple[Holding, datetime]]
) -> None:
    """Each position's state after the batch; a closed one's row goes."""
    kept = [
        (a, *_columns(h.contract), h.quantity, h.cost, at)
        for (a, _), (h, at) in held.items()
        if h.quantity
    ]
    closed = [(a, key) for (a, key), (h, _) in held.items() if not h.quantity]
    if kept:
        arrays = out.arrays(POSITION_ROW, kept)
        out.add(
            f"INSERT INTO positions ({', '.join(n for n, _ in POSITION_ROW)})"
            f" SELECT * FROM unnest({arrays}) ON CONFLICT (account_id, contract) DO UPDATE SET"
            " quantity = EXCLUDED.quantity, cost = EXCLUDED.cost, updated_at = EXCLUDED.updated_at"
        )
    if closed:
        arrays = out.arrays(CLOSED_ROW, closed)
        out.add(
            f"DELETE FROM positions p USING unnest({arrays}) AS c (account_id, contract)"
            " WHERE p.account_id = c.account_id AND p.contract = c.contract"
        )


@dataclass(frozen=True)
class Moved:
    """Why and when positions moved: what each of their history rows shares."""

    transaction_id: int | None
    cause: str
    reference: str | None
    command_id: str
    at: datetime


def move_row(account_id: UUID, m: Move, why: Moved) -> tuple[Any, ...]:
    return (
        account_id,
        *_columns(m.contract),
        m.quantity,
        m.cost,
        m.after.quantity,
        m.after.cost,
        why.transaction_id,
        why.cause,
        why.reference,
        why.command_id,
        why.at,
    )


def _columns(c: Contract) -> tuple[Any, ...]:
    return (c.key, c.symbol, c.option_type, c.strike, c.expiration, c.multiplier)


async def quotes(conn: Sql, *, symbols: list[str], at: datetime | None = None) -> dict[str, Quote]:
    """The latest quote of each symbol (at or before `at`, if given)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (symbol) symbol, bid, ask, last FROM quotes"
        " WHERE symbol = ANY($1::text[]) AND ($2::timestamptz IS NULL OR as_of <= $2)"
        " ORDER BY symbol, day DESC",
        symbols,
        at,
    )
    return {r["symbol"]: Quote(r["bid"], r["ask"], r["last"]) for r in rows}


async def save_quote(
    conn: Sql,
    *,
    symbol: str,
    bid: Decimal,
    ask: Decimal,
    last: Decimal,
    as_of: datetime,
    retention_days: int,
) -> None:
    """The day's latest quote of the symbol (an older one never replaces a newer), and the
    symbol's quotes older than the retention pruned."""
    await conn.execute(
        "INSERT INTO quotes (symbol, day, bid, ask, last, as_of) VALUES ($1, ($5 AT TIME ZONE"
        " 'UTC')::date, $2, $3, $4, $5) ON CONFLICT (symbol, day) DO UPDATE SET bid = $2,"
        " ask = $3, last = $4, as_of = $5 WHERE quotes.as_of <= $5",
        symbol,
        bid,
        ask,
        last,
        as_of,
    )
    await conn.execute(
        "DELETE FROM quotes WHERE symbol = $1 AND day < ($2 AT TIME ZONE 'UTC')::date - $3::int",
        symbol,
        as_of,
        retention_days,
    )


def insert_values(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    """Value points: (account, cash, positions value, broker value, flow, by quote, effective_at);
    each account's value state after them: accounts.save_accounts."""
    out.insert("account_values", VALUE_ROW, rows)


async def holders(conn: Sql, *, contract: str, limit: int) -> list[UUID]:
    """Up to `limit` active accounts holding `contract`, those valued longest ago first."""
    rows = await conn.fetch(
        "SELECT p.account_id FROM positions p JOIN accounts a ON a.id = p.account_id"
        " WHERE p.contract = $1 AND a.status = 'active' ORDER BY a.valued_at NULLS FIRST, a.id"
        " LIMIT $2",
        contract,
        limit,
    )
    return [r["account_id"] for r in rows]


async def drop_quote_points(conn: Sql, *, account_ids: list[UUID]) -> None:
    """The accounts' value points a quote caused earlier on the business day (`effective_now`):
    each keeps the day's last one only."""
    await conn.execute(
        "WITH day AS (SELECT date_trunc('day', effective_now() AT TIME ZONE 'UTC')"
        " AT TIME ZONE 'UTC' AS start) DELETE FROM account_values v USING day"
        " WHERE v.account_id = ANY($1::uuid[]) AND v.by_quote AND v.effective_at >= day.start"
        " AND v.effective_at < day.start + interval '1 day'",
        account_ids,
    )


async def value_series(conn: Sql, *, account_id: UUID) -> list[Row]:
    rows = await conn.fetch(
        "SELECT effective_at AS at, cash, positions_value, flow FROM account_values"
        " WHERE account_id = $1 ORDER BY effective_at, id",
        account_id,
    )
    return [dict(r) for r in rows]


# Corrections


async def entry(conn: Sql, *, transaction_id: int) -> tuple[UUID, Entry] | None:
    row = await conn.fetchrow(
        "SELECT t.account_id, t.type, t.amount, t.reverses, r.id AS reversed_by"
        " FROM transactions t LEFT JOIN transactions r ON r.reverses = t.id WHERE t.id = $1",
        transaction_id,
    )
    if row is None:
        return None
    kind = TransactionType(row["type"])
    return row["account_id"], Entry(
        transaction_id, kind, row["amount"], row["reverses"], row["reversed_by"]
    )


async def moves_of(conn: Sql, *, transaction_id: int) -> list[tuple[Holding, Move]]:
    """The position moves booked with a ledger row, each with its position as it is now."""
    rows = await conn.fetch(
        f"SELECT m.{CONTRACT.replace(', ', ', m.')}, m.quantity AS moved, m.cost AS moved_cost,"
        " m.quantity_after, m.cost_after, coalesce(p.quantity, 0) AS quantity,"
        " coalesce(p.cost, 0) AS cost FROM position_moves m LEFT JOIN positions p"
        " ON p.account_id = m.account_id AND p.contract = m.contract"
        " WHERE m.transaction_id = $1 ORDER BY m.id",
        transaction_id,
    )
    out = []
    for r in rows:
        now = _holding(r)
        done = Move(
            now.contract, r["moved"], r["moved_cost"], _holding(r, "quantity_after", "cost_after")
        )
        out.append((now, done))
    return out


async def mark_reversal(conn: Sql, *, transaction_id: int, reverses: int, reason: str) -> None:
    await conn.execute(
        "UPDATE transactions SET reverses = $2, reason = $3 WHERE id = $1",
        transaction_id,
        reverses,
        reason,
    )


# As of a past time, from the ledger and the position history (never a snapshot table)


async def cash_at(conn: Sql, *, account_id: UUID, at: datetime) -> Decimal | None:
    """The sum of the account's ledger amounts dated at or before `at` (None: none yet).
    Not the `balance_after` of the last such row: that is computed in arrival order, and an
    entry arriving late with an earlier date would make every past answer wrong."""
    value: Decimal | None = await conn.fetchval(
        "SELECT sum(amount) FROM transactions WHERE account_id = $1 AND effective_at <= $2",
        account_id,
        at,
    )
    return value


async def holdings_at(conn: Sql, *, account_id: UUID, at: datetime) -> list[Holding]:
    """Each position as the sum of its moves dated at or before `at` (not `quantity_after`,
    which follows arrival order, as `cash_at` explains)."""
    rows = await conn.fetch(
        f"SELECT {CONTRACT}, sum(quantity) AS quantity, sum(cost) AS cost FROM position_moves"
        f" WHERE account_id = $1 AND effective_at <= $2 GROUP BY {CONTRACT}"
        " HAVING sum(quantity) <> 0 ORDER BY option_type NULLS FIRST, symbol, expiration, strike",
        account_id,
        at,
    )
    return [_holding(r) for r in rows]


async def position_mismatches(conn: Sql) -> tuple[int, list[Row]]:
    """How many positions were checked, and those that are not the sum of their history."""
    rows = await conn.fetch(
        "SELECT coalesce(p.account_id, h.account_id) AS account_id,"
        " coalesce(p.contract, h.contract) AS contract, coalesce(p.quantity, 0) AS quantity,"
        " coalesce(p.cost, 0) AS cost, coalesce(h.quantity, 0) AS history_quantity,"
        " coalesce(h.cost, 0) AS history_cost FROM positions p FULL JOIN (SELECT account_id,"
        " contract, sum(quantity) AS quantity, sum(cost) AS cost FROM position_moves"
        " GROUP BY account_id, contract) h ON h.account_id = p.account_id"
        " AND h.contract = p.contract"
    )
    bad = [
        dict(r)
        for r in rows
        if (r["quantity"], r["cost"]) != (r["history_quantity"], r["history_cost"])
    ]
    return sum(1 for r in rows if r["quantity"] or r["history_quantity"]), bad
