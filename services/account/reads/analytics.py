"""Read-side of docs/rules.md section 7: account metrics from the ledger, portfolio trees and their
growth.

Returns are measured on the flow-adjusted balance (transfers, deposits and withdrawals taken
out), so a fork's debit or a deposit is never mistaken for a loss or a gain.
"""

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.account.domain import TradeStats, UnknownAccount, UnknownPortfolio, account_metrics
from services.account.domain.analytics import (
    attribution,
    performance_series,
    thin,
    weekly_generations,
)
from services.account.state.store import positions as position_store
from services.account.state.store import reads
from shared.contracts import account as c

ZERO = Decimal("0.00")


async def metrics(conn: asyncpg.Connection, p: c.AccountRef) -> dict[str, Any]:
    row = await reads.get_account(conn, account_id=p.account_id)
    if row is None:
        raise UnknownAccount(f"no account {p.account_id}")
    rows = await reads.balance_series(conn, account_ids=[p.account_id])
    values = await position_store.value_series(conn, account_id=p.account_id)
    counts = await reads.trade_counts(conn, account_id=p.account_id)
    stats = TradeStats(
        successful_trades=counts["successful"],
        total_trades=counts["total"],
        premium_collected=counts["premium"],
        assignments=counts["assignments"],
        adjustments=counts["adjustments"],
    )
    m = account_metrics(
        performance_series(rows, values), trades=stats, violations=counts["violations"]
    )
    data = {k: _plain(v) for k, v in asdict(m).items()}
    data["reinvestments"] = [
        _plain(r) for r in await reads.reinvestments(conn, account_id=p.account_id)
    ]
    return {
        "account_id": str(p.account_id),
        "type": row["type"],
        "status": row["status"],
        "balance": str(row["balance"]),
        **data,
    }


# A reply must fit one stream entry (256 KiB): a decade-old tree has hundreds of portfolios and
# hundreds of weeks, so the reply lists the first portfolios and a thinned growth series.
MAX_NODES = 200
MAX_POINTS = 130


async def tree(conn: asyncpg.Connection, p: c.PortfolioRef) -> dict[str, Any]:
    portfolios = await reads.tree(conn, portfolio_id=p.portfolio_id)
    if not portfolios:
        raise UnknownPortfolio(f"no portfolio {p.portfolio_id}")
    accounts = await reads.tree_accounts(conn, portfolio_ids=[q["id"] for q in portfolios])
    rows = await reads.balance_series(conn, account_ids=[a["id"] for a in accounts])
    generation = {q["id"]: q["generation"] for q in portfolios}
    owner = {a["id"]: generation[a["portfolio_id"]] for a in accounts}
    # Value as `alluse show` gives it: cash + positions at their latest marks (section 11).
    held = await position_store.positions_values(conn, account_ids=[a["id"] for a in accounts])
    value = {a["id"]: a["balance"] + held.get(a["id"], ZERO) for a in accounts}
    nodes = []
    for q in portfolios:
        mine = [a for a in accounts if a["portfolio_id"] == q["id"]]
        nodes.append(
            {
                "portfolio_id": str(q["id"]),
                "parent_id": _s(q["parent_id"]),
                "generation": q["generation"],
                "name": q["name"],
                "forked_at": _s(q["forked_at"]),
                "fork_surplus": _s(q["surplus"]),
                "merged_at": _s(q["merged_at"]),
                "merged_total": _s(q["merged_total"]),
                "value": str(sum((value[a["id"]] for a in mine), start=ZERO)),
                "cash": str(sum((a["balance"] for a in mine), start=ZERO)),
                "accounts": [
                    {
                        "id": str(a["id"]),
                        "type": a["type"],
                        "status": a["status"],
                        "balance": str(a["balance"]),
                        "value": str(value[a["id"]]),
                    }
                    for a in mine
                ],
            }
        )
    return {
        "portfolio_id": str(p.portfolio_id),
        "portfolios": nodes[:MAX_NODES],
        "portfolios_total": len(nodes),
        "portfolios_shown": min(len(nodes), MAX_NODES),
        "total_value": str(sum(value.values(), start=ZERO)),
        "total_cash": str(sum((a["balance"] for a in accounts), start=ZERO)),
        "forks": sum(1 for q in portfolios if q["forked_at"]),
        "merges": sum(1 for q in portfolios if q["merged_at"]),
        "growth": thin(weekly_generations(rows, owner), MAX_POINTS),
        "attribution": attribution(rows),
    }


def _s(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal | datetime):
        return _s(value)
    return value
