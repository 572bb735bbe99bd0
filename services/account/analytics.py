"""Read-side of section 7: account metrics from the ledger, portfolio trees and their growth.

Returns are measured on the flow-adjusted balance (transfers, deposits and withdrawals taken
out), so a fork's debit or a deposit is never mistaken for a loss or a gain.
"""

from collections import defaultdict
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.account import position_store, store
from services.account.domain import TradeStats, UnknownAccount, UnknownPortfolio, account_metrics
from services.account.domain.reinvest import TRADING_INCOME
from shared.contracts import account as c

ZERO = Decimal("0.00")


def performance_series(
    rows: list[dict[str, Any]], values: list[dict[str, Any]] | None = None
) -> list[tuple[datetime, Decimal]]:
    """(time, value less the net flows since the first row) for one account: value is cash
    (the ledger rows) plus its positions at their marks (the value points, section 11)."""
    points = sorted(
        [(r["at"], 0, r) for r in rows] + [(v["at"], 1, v) for v in values or []],
        key=lambda p: (p[0], p[1]),
    )
    flows, held, out = ZERO, ZERO, []
    for i, (at, is_value, r) in enumerate(points):
        if is_value:
            held = r["positions_value"]
            out.append((at, r["cash"] + held - flows))
            continue
        if i and r["type"] not in TRADING_INCOME:
            flows += r["amount"]
        out.append((at, r["balance_after"] + held - flows))
    return out


async def metrics(conn: asyncpg.Connection, p: c.AccountRef) -> dict[str, Any]:
    row = await store.get_account(conn, account_id=p.account_id)
    if row is None:
        raise UnknownAccount(f"no account {p.account_id}")
    rows = await store.balance_series(conn, account_ids=[p.account_id])
    values = await position_store.value_series(conn, account_id=p.account_id)
    counts = await store.trade_counts(conn, account_id=p.account_id)
    stats = TradeStats(
        successful_trades=counts["successful"], total_trades=counts["total"], premium_collected=counts["premium"],
        assignments=counts["assignments"], adjustments=counts["adjustments"],
    )  # fmt: skip
    m = account_metrics(
        performance_series(rows, values), trades=stats, violations=counts["violations"]
    )
    data = {k: _plain(v) for k, v in asdict(m).items()}
    data["reinvestments"] = [
        _plain(r) for r in await store.reinvestments(conn, account_id=p.account_id)
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
    portfolios = await store.tree(conn, portfolio_id=p.portfolio_id)
    if not portfolios:
        raise UnknownPortfolio(f"no portfolio {p.portfolio_id}")
    accounts = await store.tree_accounts(conn, portfolio_ids=[q["id"] for q in portfolios])
    rows = await store.balance_series(conn, account_ids=[a["id"] for a in accounts])
    generation = {q["id"]: q["generation"] for q in portfolios}
    owner = {a["id"]: generation[a["portfolio_id"]] for a in accounts}
    nodes = []
    for q in portfolios:
        mine = [a for a in accounts if a["portfolio_id"] == q["id"]]
        nodes.append({
            "portfolio_id": str(q["id"]), "parent_id": _s(q["parent_id"]), "generation": q["generation"],
            "name": q["name"], "forked_at": _s(q["forked_at"]), "fork_surplus": _s(q["surplus"]),
            "merged_at": _s(q["merged_at"]), "merged_total": _s(q["merged_total"]),
            "value": str(sum((a["balance"] for a in mine), start=ZERO)),
            "accounts": [{"id": str(a["id"]), "type": a["type"], "status": a["status"], "balance": str(a["balance"])} for a in mine],
        })  # fmt: skip
    return {
        "portfolio_id": str(p.portfolio_id), "portfolios": nodes[:MAX_NODES],
        "portfolios_total": len(nodes), "portfolios_shown": min(len(nodes), MAX_NODES),
        "total_value": str(sum((a["balance"] for a in accounts), start=ZERO)),
        "forks": sum(1 for q in portfolios if q["forked_at"]), "merges": sum(1 for q in portfolios if q["merged_at"]),
        "growth": thin(weekly_generations(rows, owner), MAX_POINTS), "attribution": attribution(rows),
    }  # fmt: skip


def thin(points: list[dict[str, Any]], most: int) -> list[dict[str, Any]]:
    """At most `most` points, evenly spread, always keeping the last (the tree's value now)."""
    if len(points) <= most:
        return points
    step = len(points) / (most - 1)
    return [points[int(i * step)] for i in range(most - 1)] + [points[-1]]


def weekly_generations(rows: list[dict[str, Any]], owner: dict[UUID, int]) -> list[dict[str, Any]]:
    """Each generation's value at every week end (UTC Sunday close) that saw a change."""
    balances: dict[UUID, Decimal] = {}
    points: list[dict[str, Any]] = []
    week_end: datetime | None = None
    for r in rows:
        end = _week_end(r["at"])
        if week_end is not None and end != week_end:
            points.append(_snapshot(balances, owner, week_end))
        week_end = end
        balances[r["account_id"]] = r["balance_after"]
    if week_end is not None:
        points.append(_snapshot(balances, owner, week_end))
    return points


def _week_end(at: datetime) -> datetime:
    start = (at - timedelta(days=at.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=7)


def _snapshot(
    balances: dict[UUID, Decimal], owner: dict[UUID, int], at: datetime
) -> dict[str, Any]:
    by_gen: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for account_id, balance in balances.items():
        by_gen[owner[account_id]] += balance
    total = sum(by_gen.values(), start=ZERO)
    return {
        "at": at.isoformat(),
        "total": str(total),
        "generations": {str(g): str(v) for g, v in sorted(by_gen.items())},
    }


def attribution(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Trading income of the tree by the week type its trades were tagged with."""
    income: dict[str, Decimal] = defaultdict(lambda: ZERO)
    trades: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["type"] in TRADING_INCOME:
            income[r["week_type"] or "untagged"] += r["amount"]
            trades[r["week_type"] or "untagged"] += 1
    total = sum(income.values(), start=ZERO)
    return {
        wt: {"income": str(v), "trades": str(trades[wt]), "share_pct": str((v * 100 / total).quantize(Decimal("0.01")) if total else ZERO)}
        for wt, v in sorted(income.items())
    }  # fmt: skip


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
