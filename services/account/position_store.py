"""Every SQL statement of section 11: positions and their history, quotes, account values,
reversals and the as-of reads. Functions take the caller's connection, keyword-only."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import TransactionType
from services.account.domain.marks import Quote
from services.account.domain.money import ZERO
from services.account.domain.positions import Contract, Holding, Move
from services.account.domain.reversal import Entry
from shared.infra.unit import Sql

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
    )  # fmt: skip
    quotes = {
        r["contract"]: Quote(r["bid"], r["ask"], r["last"]) for r in rows if r["bid"] is not None
    }
    return [_holding(r) for r in rows], quotes


async def holdings(conn: Sql, *, account_id: UUID) -> list[Holding]:
    """Everything the account holds now (no quotes: what a fork or a merge moves or keeps)."""
    rows = await conn.fetch(
        f"SELECT {CONTRACT}, quantity, cost FROM positions WHERE account_id = $1"
        " ORDER BY option_type NULLS FIRST, symbol, expiration, strike",
        account_id,
    )
    return [_holding(r) for r in rows]


async def holding(conn: Sql, *, account_id: UUID, contract: Contract) -> Holding:
    found = await holding_by_key(conn, account_id=account_id, key=contract.key)
    return Holding(contract) if found is None else found


async def holding_by_key(conn: Sql, *, account_id: UUID, key: str) -> Holding | None:
    row = await conn.fetchrow(
        f"SELECT {CONTRACT}, quantity, cost FROM positions WHERE account_id = $1 AND contract = $2",
        account_id, key,
    )  # fmt: skip
    return None if row is None else _holding(row)


async def short_option(
    conn: Sql, *, account_id: UUID, symbol: str, option_type: str, strike: Decimal
) -> Holding | None:
    """The short position an assignment names (its expiration is not on the wire): the
    nearest expiration first, as the broker assigns the series that is due."""
    row = await conn.fetchrow(
        f"SELECT {CONTRACT}, quantity, cost FROM positions WHERE account_id = $1 AND symbol = $2"
        " AND option_type = $3 AND strike = $4 AND quantity < 0 ORDER BY expiration NULLS LAST LIMIT 1",
        account_id, symbol, option_type, strike,
    )  # fmt: skip
    return None if row is None else _holding(row)


async def write_moves(
    conn: Sql, *, account_id: UUID, moves: Iterable[Move], transaction_id: int | None,
    cause: str, reference: str | None, command_id: str,
) -> None:  # fmt: skip
    """Each move into the history and its position's new state (a closed position's row goes)."""
    for m in moves:
        c, after = m.contract, m.after
        # One statement per move: the history row rides along as a CTE ($10, $11: its after).
        await conn.execute(
            f"WITH moved AS (INSERT INTO position_moves (account_id, {CONTRACT}, quantity, cost,"
            " quantity_after, cost_after, transaction_id, cause, reference, command_id) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)) "
            + (_CLOSE if after.quantity == 0 else _KEEP),
            account_id, c.key, c.symbol, c.option_type, c.strike, c.expiration, c.multiplier,
            m.quantity, m.cost, after.quantity, after.cost, transaction_id, cause, reference,
            command_id,
        )  # fmt: skip


_CLOSE = "DELETE FROM positions WHERE account_id = $1 AND contract = $2"
_KEEP = (
    f"INSERT INTO positions (account_id, {CONTRACT}, quantity, cost)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $11) ON CONFLICT (account_id, contract)"
    " DO UPDATE SET quantity = $10, cost = $11, updated_at = effective_now()"
)


async def quotes(conn: Sql, *, symbols: list[str], at: datetime | None = None) -> dict[str, Quote]:
    """The latest quote of each symbol (at or before `at`, if given)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (symbol) symbol, bid, ask, last FROM quotes"
        " WHERE symbol = ANY($1::text[]) AND ($2::timestamptz IS NULL OR as_of <= $2)"
        " ORDER BY symbol, day DESC",
        symbols, at,
    )  # fmt: skip
    return {r["symbol"]: Quote(r["bid"], r["ask"], r["last"]) for r in rows}


async def save_quote(
    conn: Sql, *, symbol: str, bid: Decimal, ask: Decimal, last: Decimal,
    as_of: datetime, retention_days: int,
) -> None:  # fmt: skip
    """The day's latest quote of the symbol (an older one never replaces a newer), and the
    symbol's quotes older than the retention pruned."""
    await conn.execute(
        "INSERT INTO quotes (symbol, day, bid, ask, last, as_of) VALUES ($1, ($5 AT TIME ZONE"
        " 'UTC')::date, $2, $3, $4, $5) ON CONFLICT (symbol, day) DO UPDATE SET bid = $2,"
        " ask = $3, last = $4, as_of = $5 WHERE quotes.as_of <= $5",
        symbol, bid, ask, last, as_of,
    )  # fmt: skip
    await conn.execute(
        "DELETE FROM quotes WHERE symbol = $1 AND day < ($2 AT TIME ZONE 'UTC')::date - $3::int",
        symbol, as_of, retention_days,
    )  # fmt: skip


async def value_state(conn: Sql, *, account_id: UUID) -> asyncpg.Record:
    """Cash as written (a fork or merge in the same command may have moved it), the drawdown's
    peak and state, and the money moved in or out since the peak was last brought up to date
    (with the last ledger id that covers)."""
    row = await conn.fetchrow(
        "SELECT a.balance, a.peak_value, a.drawdown_breached, coalesce(f.flows, 0) AS flows,"
        " coalesce(f.through, a.valued_through) AS through FROM accounts a LEFT JOIN LATERAL"
        " (SELECT sum(amount) FILTER (WHERE type IN ('deposit', 'withdrawal', 'fork_transfer',"
        " 'merge_transfer')) AS flows, max(id) AS through FROM transactions t"
        " WHERE t.account_id = a.id AND t.id > a.valued_through) f ON true WHERE a.id = $1",
        account_id,
    )
    assert row is not None
    return row


async def save_value(
    conn: Sql, *, account_id: UUID, cash: Decimal, positions_value: Decimal,
    broker_value: Decimal | None, peak: Decimal, drawdown_pct: Decimal, breached: bool, through: int,
    flow: Decimal = ZERO,
) -> None:  # fmt: skip
    await conn.execute(
        "WITH point AS (INSERT INTO account_values (account_id, cash, positions_value,"
        " broker_value, flow) VALUES ($1, $7, $2, $8, $9)) UPDATE accounts SET positions_value = $2,"
        " peak_value = $3, drawdown_pct = $4, drawdown_breached = $5, valued_through = $6,"
        " valued_at = effective_now() WHERE id = $1",
        account_id, positions_value, peak, drawdown_pct, breached, through, cash, broker_value, flow,
    )  # fmt: skip


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
        transaction_id, reverses, reason,
    )  # fmt: skip


# As of a past time, from the ledger and the position history (never a snapshot table)


async def cash_at(conn: Sql, *, account_id: UUID, at: datetime) -> Decimal | None:
    """The sum of the account's ledger amounts dated at or before `at` (None: none yet).
    Not the `balance_after` of the last such row: that is computed in arrival order, and an
    entry arriving late with an earlier date would make every past answer wrong."""
    value: Decimal | None = await conn.fetchval(
        "SELECT sum(amount) FROM transactions WHERE account_id = $1 AND effective_at <= $2",
        account_id, at,
    )  # fmt: skip
    return value


async def holdings_at(conn: Sql, *, account_id: UUID, at: datetime) -> list[Holding]:
    """Each position as the sum of its moves dated at or before `at` (not `quantity_after`,
    which follows arrival order, as `cash_at` explains)."""
    rows = await conn.fetch(
        f"SELECT {CONTRACT}, sum(quantity) AS quantity, sum(cost) AS cost FROM position_moves"
        f" WHERE account_id = $1 AND effective_at <= $2 GROUP BY {CONTRACT}"
        " HAVING sum(quantity) <> 0 ORDER BY option_type NULLS FIRST, symbol, expiration, strike",
        account_id, at,
    )  # fmt: skip
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
        dict(r) for r in rows
        if (r["quantity"], r["cost"]) != (r["history_quantity"], r["history_cost"])
    ]  # fmt: skip
    return sum(1 for r in rows if r["quantity"] or r["history_quantity"]), bad
