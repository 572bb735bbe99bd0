"""`alluse fork|merge|reinvest|metrics|tree`: geometric growth (docs/rules.md sections 4-7).

Like every CLI area, it talks to the account service through its streams only.
"""

import argparse
import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.cli.arguments import account_id
from services.cli.charts import svg, text_tree
from services.cli.client import StreamClient, until
from services.cli.output import OK, emit, human, rows_table
from services.cli.wiring import add


async def _outcome(
    c: StreamClient, a: argparse.Namespace, command: str, data: dict[str, Any], final: str
) -> int:
    """Send one command, wait for its final event, and show that event's data."""
    events = await c.command(command, data, done=until(final), event_id=a.id)
    return _show(a, next(e.data for e in events if e.type == final))


async def fork(c: StreamClient, a: argparse.Namespace) -> int:
    account = {"account_id": a.account_id}
    return await _outcome(c, a, "alluse.account.fork", account, "alluse.account.forked")


async def merge(c: StreamClient, a: argparse.Namespace) -> int:
    portfolio = {"portfolio_id": a.portfolio_id}
    return await _outcome(c, a, "alluse.account.merge", portfolio, "alluse.account.merged")


async def reinvest(c: StreamClient, a: argparse.Namespace) -> int:
    data = {k: v for k, v in (("account_id", a.account), ("quarter", a.quarter)) if v}
    events = await c.command(
        "alluse.account.reinvest",
        data,
        done=until("alluse.account.reinvestment_completed"),
        event_id=a.id,
    )
    rows = [e.data for e in events if e.type == "alluse.account.reinvested"]
    if a.json:
        emit(a, rows)
    else:
        rows_table(
            rows, ("account_id", "quarter", "net_income", "contracts_amount", "leaps_amount")
        )
    return OK


async def metrics(c: StreamClient, a: argparse.Namespace) -> int:
    data = await c.query("alluse.query.metrics", {"account_id": a.account_id})
    if not a.json:
        for key in ("weekly_returns_pct", "monthly_returns_pct", "quarterly_returns_pct"):
            values = data.get(key) or []
            data[key] = f"{len(values)} periods, last: {', '.join(values[-4:])}"
    return _show(a, data)


async def tree(c: StreamClient, a: argparse.Namespace) -> int:
    data = await c.query("alluse.query.tree", {"portfolio_id": a.portfolio_id})
    if a.svg:
        await asyncio.to_thread(Path(a.svg).write_text, svg(data["growth"]), encoding="utf-8")
    if a.json:
        emit(a, data)
        return OK
    print(text_tree(data))
    for wt, v in data["attribution"].items():
        print(
            f"  {wt:<7} {v['trades']:>6} trades  {Decimal(v['income']):>16,.2f}  {v['share_pct']:>7} %"
        )
    if a.svg:
        print(f"growth chart written to {a.svg}")
    return OK


def _show(a: argparse.Namespace, data: dict[str, Any]) -> int:
    emit(a, data if a.json else human(data))
    return OK


def register(sub: Any) -> None:
    p = add(
        sub,
        "fork",
        fork,
        "fork a Gen-Acc's surplus into a new child portfolio",
        "  alluse fork ACCOUNT_ID",
        command=True,
    )
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    p = add(
        sub,
        "merge",
        merge,
        "merge a child portfolio into its parent's Com-Acc",
        "  alluse merge PORTFOLIO_ID",
        command=True,
    )
    p.add_argument("portfolio_id", type=account_id, metavar="PORTFOLIO_ID")
    p = add(
        sub,
        "reinvest",
        reinvest,
        "allocate Rev/Com quarterly net income 75/25 contracts/LEAPS",
        "  alluse reinvest\n  alluse reinvest --account ACCOUNT_ID --quarter 2026-Q1",
        command=True,
    )
    p.add_argument(
        "--account", type=account_id, help="one account (default: every Rev-Acc and Com-Acc)"
    )
    p.add_argument("--quarter", help="e.g. 2026-Q1 (default: the latest that has fallen due)")
    p = add(
        sub,
        "metrics",
        metrics,
        "an account's performance metrics",
        "  alluse metrics ACCOUNT_ID",
        command=False,
    )
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    p = add(
        sub,
        "tree",
        tree,
        "a portfolio tree, its growth and attribution by week type",
        "  alluse tree PORTFOLIO_ID\n  alluse tree PORTFOLIO_ID --svg growth.svg",
        command=False,
    )
    p.add_argument("portfolio_id", type=account_id, metavar="PORTFOLIO_ID")
    p.add_argument(
        "--svg", metavar="FILE", help="also write an SVG chart of each generation's value"
    )
