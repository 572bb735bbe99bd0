"""Read-side: answers to queries, XADDed on the caller's `replyto` stream."""

from typing import Any
from uuid import UUID

import asyncpg

from services.account.domain import AccountStatus, UnknownAccount
from services.account.handlers.events import account_view
from services.account.reads import positions as position_queries
from services.account.state.store import positions as position_store
from services.account.state.store import reads
from services.account.state.store.accounts import to_account
from shared.contracts import account as c


async def account(conn: asyncpg.Connection, p: c.AccountRef) -> dict[str, Any]:
    row = await reads.get_account(conn, account_id=p.account_id)
    if row is None:
        raise UnknownAccount(f"no account {p.account_id}")
    held = await position_queries.holdings(conn, p.account_id, row["balance"])
    return (
        account_view(to_account(row), row["name"])
        | {"created_at": row["created_at"].isoformat()}
        | held
    )


async def accounts(
    conn: asyncpg.Connection, p: c.ListAccounts, *, within: list[UUID] | None = None
) -> dict[str, Any]:
    """`within`: only accounts of these portfolios (a scoped caller's, services/account/handlers/scopes.py)."""
    rows = await reads.list_accounts(
        conn,
        within=within,
        portfolio_id=p.portfolio_id,
        account_type=p.type,
        status=p.status,
        after=p.after,
        limit=p.limit,
    )
    items = [account_view(to_account(r), r["name"]) for r in rows]
    return {"accounts": items, "next": items[-1]["id"] if len(items) == p.limit else None}


async def history(conn: asyncpg.Connection, p: c.History) -> dict[str, Any]:
    if await reads.get_account(conn, account_id=p.account_id) is None:
        raise UnknownAccount(f"no account {p.account_id}")
    rows = await reads.history(
        conn,
        account_id=p.account_id,
        tx_type=p.type,
        before=p.before,
        limit=p.limit,
        until=p.until,
    )
    dates = ("created_at", "effective_at")
    items = [
        {
            **{k: str(v) if v is not None else None for k, v in r.items() if k not in dates},
            **{k: r[k].isoformat() for k in dates},
        }
        for r in rows
    ]
    return {
        "account_id": str(p.account_id),
        "transactions": items,
        "next": rows[-1]["id"] if len(rows) == p.limit else None,
    }


async def summary(
    conn: asyncpg.Connection, _: c.Empty, *, within: list[UUID] | None = None
) -> dict[str, Any]:
    groups = await reads.summary(conn, within=within)
    active = [g for g in groups if g["status"] == AccountStatus.ACTIVE]
    return {
        "portfolios": await reads.portfolio_count(conn) if within is None else len(within),
        "accounts": sum(g["accounts"] for g in groups),
        "total_balance": str(sum((g["balance"] for g in groups), start=0)),
        "active_balance": str(sum((g["balance"] for g in active), start=0)),
        "by_type_and_status": [{**g, "balance": str(g["balance"])} for g in groups],
    }


async def integrity(conn: asyncpg.Connection, _: c.Empty) -> dict[str, Any]:
    checked, bad = await reads.ledger_mismatches(conn)
    positions, moved = await position_store.position_mismatches(conn)
    return {
        "ok": not bad and not moved,
        "accounts_checked": checked,
        "mismatches": [
            {"account_id": str(b["id"]), "balance": str(b["balance"]), "ledger": str(b["ledger"])}
            for b in bad
        ],
        "positions_checked": positions,
        "position_mismatches": [{k: str(v) for k, v in m.items()} for m in moved],
    }
