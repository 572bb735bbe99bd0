"""Read-side of docs/rules.md section 11: positions and value now, and as they were at a past time
(from the ledger and the position history, never from a snapshot that could drift)."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import UnknownAccount
from services.account.domain.marks import positions_value
from services.account.domain.reversal import NoHistory
from services.account.handlers.valuation import marked, view
from services.account.state.repositories import PositionStore
from services.account.state.store import positions as ps
from services.account.state.store import reads
from shared.contracts import account as c


async def holdings(
    conn: asyncpg.Connection, account_id: UUID, cash: Decimal, at: datetime | None = None
) -> dict[str, Any]:
    """PositionStore at their marks, and the value they make with `cash`."""
    marks = await marked(PositionStore(conn), account_id=account_id, at=at)
    value = positions_value(marks)
    return {
        "cash": str(cash),
        "positions": view(marks),
        "positions_value": str(value),
        "value": str(cash + value),
    }


async def positions(conn: asyncpg.Connection, p: c.AccountRef) -> dict[str, Any]:
    row = await reads.get_account(conn, account_id=p.account_id)
    if row is None:
        raise UnknownAccount(f"no account {p.account_id}")
    return {"account_id": str(p.account_id), **await holdings(conn, p.account_id, row["balance"])}


async def as_of(conn: asyncpg.Connection, p: c.AsOf) -> dict[str, Any]:
    row = await reads.get_account(conn, account_id=p.account_id)
    if row is None:
        raise UnknownAccount(f"no account {p.account_id}")
    cash = await ps.cash_at(conn, account_id=p.account_id, at=p.at)
    if cash is None:
        raise NoHistory(f"account {p.account_id} had no transaction by {p.at}")
    return {
        "account_id": str(p.account_id),
        "type": row["type"],
        "name": row["name"],
        "as_of": p.at.isoformat(),
        **await holdings(conn, p.account_id, cash, p.at),
    }
