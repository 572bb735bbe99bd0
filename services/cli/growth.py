"""`alluse fork|merge|reinvest|metrics|tree`: geometric growth (sections 4-7).

Like every CLI area, it talks to the account service through its streams only.
"""

import argparse
import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.cli.account import _add, account_id, human, rows_table
from services.cli.client import StreamClient, until
from services.cli.output import OK, emit


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


def text_tree(data: dict[str, Any]) -> str:
    """The portfolio tree, children under their parent, with value and fork / merge facts."""
    nodes = {n["portfolio_id"]: n for n in data["portfolios"]}
    kids: dict[str | None, list[str]] = {}
    for n in data["portfolios"]:
        kids.setdefault(n["parent_id"] if n["parent_id"] in nodes else None, []).append(
            n["portfolio_id"]
        )
    lines = [f"tree {data['portfolio_id']}: {data['forks']} forks, {data['merges']} merges, "
             f"value {Decimal(data['total_value']):,.2f}"]  # fmt: skip

    def walk(pid: str, prefix: str, last: bool) -> None:
        n = nodes[pid]
        state = (
            f"merged {n['merged_at'][:10]} ({Decimal(n['merged_total']):,.2f})"
            if n["merged_at"]
            else f"{Decimal(n['value']):,.2f}"
        )
        born = f" forked {n['forked_at'][:10]}" if n["forked_at"] else ""
        lines.append(
            f"{prefix}{'└─ ' if last else '├─ '}gen {n['generation']} {pid[:8]} {state}{born}"
        )
        children = kids.get(pid, [])
        for i, child in enumerate(children):
            walk(child, prefix + ("   " if last else "│  "), i == len(children) - 1)

    roots = kids.get(None, [])
    for i, r in enumerate(roots):
        walk(r, "", i == len(roots) - 1)
    shown, total = (
        data.get("portfolios_shown", len(nodes)),
        data.get("portfolios_total", len(nodes)),
    )
    if shown < total:
        lines.append(f"(showing the first {shown} of {total} portfolios)")
    return "\n".join(lines)


def svg(points: list[dict[str, Any]], width: int = 900, height: int = 420) -> str:
    """A stacked area chart of each generation's value over time, hand-written SVG."""
    if not points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"/>'
    gens = sorted({int(g) for p in points for g in p["generations"]})
    top = max(float(p["total"]) for p in points) or 1.0
    pad, n = 50, max(len(points) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{pad + i * (width - 2 * pad) / n:.1f},{height - pad - v * (height - 2 * pad) / top:.1f}"

    colours = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
    ]
    below = [0.0] * len(points)
    shapes = []
    for g in gens:
        above = [
            b + float(p["generations"].get(str(g), 0)) for b, p in zip(below, points, strict=True)
        ]
        upper = " ".join(xy(i, v) for i, v in enumerate(above))
        lower = " ".join(xy(i, v) for i, v in reversed(list(enumerate(below))))
        shapes.append(f'<polygon points="{upper} {lower}" fill="{colours[g % len(colours)]}" fill-opacity="0.8">'
                      f"<title>generation {g}</title></polygon>")  # fmt: skip
        below = above
    first, last = points[0]["at"][:10], points[-1]["at"][:10]
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="{pad}" y="20">Portfolio tree value by generation, {first} to {last}; top {top:,.0f} USD</text>',
        *shapes,
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{pad}" y="{height - pad + 18}">{first}</text><text x="{width - pad - 70}" y="{height - pad + 18}">{last}</text>',
        *(f'<text x="{width - pad + 5}" y="{pad + 16 * i}" fill="{colours[g % len(colours)]}">gen {g}</text>' for i, g in enumerate(gens)),
        "</svg>",
    ])  # fmt: skip


def _show(a: argparse.Namespace, data: dict[str, Any]) -> int:
    emit(a, data if a.json else human(data))
    return OK


def register(sub: Any) -> None:
    p = _add(
        sub,
        "fork",
        fork,
        "fork a Gen-Acc's surplus into a new child portfolio",
        "  alluse fork ACCOUNT_ID",
        command=True,
    )
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    p = _add(
        sub,
        "merge",
        merge,
        "merge a child portfolio into its parent's Com-Acc",
        "  alluse merge PORTFOLIO_ID",
        command=True,
    )
    p.add_argument("portfolio_id", type=account_id, metavar="PORTFOLIO_ID")
    p = _add(sub, "reinvest", reinvest, "allocate Rev/Com quarterly net income 75/25 contracts/LEAPS",
             "  alluse reinvest\n  alluse reinvest --account ACCOUNT_ID --quarter 2026-Q1", command=True)  # fmt: skip
    p.add_argument(
        "--account", type=account_id, help="one account (default: every Rev-Acc and Com-Acc)"
    )
    p.add_argument("--quarter", help="e.g. 2026-Q1 (default: the latest that has fallen due)")
    p = _add(
        sub,
        "metrics",
        metrics,
        "an account's performance metrics",
        "  alluse metrics ACCOUNT_ID",
        command=False,
    )
    p.add_argument("account_id", type=account_id, metavar="ACCOUNT_ID")
    p = _add(sub, "tree", tree, "a portfolio tree, its growth and attribution by week type",
             "  alluse tree PORTFOLIO_ID\n  alluse tree PORTFOLIO_ID --svg growth.svg", command=False)  # fmt: skip
    p.add_argument("portfolio_id", type=account_id, metavar="PORTFOLIO_ID")
    p.add_argument(
        "--svg", metavar="FILE", help="also write an SVG chart of each generation's value"
    )
