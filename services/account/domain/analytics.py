"""docs/rules.md section 7, pure: an account's flow-adjusted performance series, a portfolio tree's
weekly value by generation, and trading income by week type. Rows are plain ledger rows."""

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from .reinvest import TRADING_INCOME

ZERO = Decimal("0.00")


def performance_series(
    rows: list[dict[str, Any]], values: list[dict[str, Any]] | None = None
) -> list[tuple[datetime, Decimal]]:
    """(time, value less the net flows since the first row) for one account: value is cash
    (the ledger rows) plus its positions at their marks (the value points, section 11); a
    value point's `flow` is the value of positions a merge moved in or out."""
    points = sorted(
        [(r["at"], 0, r) for r in rows] + [(v["at"], 1, v) for v in values or []],
        key=lambda p: (p[0], p[1]),
    )
    flows, held, out = ZERO, ZERO, []
    for i, (at, is_value, r) in enumerate(points):
        if is_value:
            held = r["positions_value"]
            flows += r.get("flow") or ZERO
            out.append((at, r["cash"] + held - flows))
            continue
        if i and r["type"] not in TRADING_INCOME:
            flows += r["amount"]
        out.append((at, r["balance_after"] + held - flows))
    return out


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
        wt: {
            "income": str(v),
            "trades": str(trades[wt]),
            "share_pct": str((v * 100 / total).quantize(Decimal("0.01")) if total else ZERO),
        }
        for wt, v in sorted(income.items())
    }
