"""`alluse fork|merge|reinvest|metrics|tree|simulate-decade`: geometric growth (sections 4-7).

Like every CLI area, it talks to the account service through its streams only.
`simulate-decade` feeds the running service ten simulated years of fills for one new portfolio
tree (dated in the past, so the service's business time runs a week per step) and reports
its forks, merges and final value.
"""

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

from services.cli.account import _add, account_id, human, rows_table
from services.cli.client import CliError, StreamClient, until
from services.cli.output import OK, TIMEOUT, emit
from shared.contracts.envelope import new_event
from shared.contracts.messages import COMMAND_REJECTED
from shared.contracts.streams import ACCOUNT_COMMANDS, ACCOUNT_EVENTS, WS2_EVENTS, WS4_EVENTS
from shared.infra.progress import Progress

WEEK_RETURN_PCT = {  # midpoints of section 8's expected weekly returns
    "P-EW": "2.0", "P-AWL": "2.0", "P-RO": "1.25", "P-AOL": "2.0", "P-DD": "-0.25",
    "C-WAP": "3.5", "C-WAP+": "5.5", "C-PNO": "2.0", "C-RO": "1.0", "C-REC": "0.65", "W-IDL": "0",
}  # fmt: skip
TARGET_SHARE = {
    "generation": Decimal(1),
    "revenue": Decimal("0.667"),
    "compounding": Decimal("0.333"),
}


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


# --- simulate-decade -------------------------------------------------------------------------


async def simulate_decade(c: StreamClient, a: argparse.Namespace) -> int:
    rng, began = random.Random(a.seed), time.monotonic()  # noqa: S311 - a reproducible simulation
    start = _thursday(datetime.now(UTC) - timedelta(weeks=52 * a.years + 1))
    events_key = c.streams.key(ACCOUNT_EVENTS)
    last = await c.redis.xrevrange(events_key, count=1)
    cursor: Any = last[0][0] if last else "0-0"
    init = new_event("alluse.system.initialize", c.source, {"total_capital": a.capital, "template": a.template, "name": "decade"},
                     authorization=f"Bearer {c.token}")  # fmt: skip
    init["time"] = (start - timedelta(days=1)).isoformat()
    await c.redis.xadd(c.streams.key(ACCOUNT_COMMANDS), init)  # type: ignore[arg-type]
    accounts: dict[str, dict[str, Any]] = {}
    born: dict[str, dict[str, Any]] = {}  # created by some fork; ours once its `forked` names them
    forks = merges = fills = 0
    root = ""
    while not root:
        cursor, evs = await _read(c, events_key, cursor)
        for e in evs:
            if e["type"] == "alluse.system.initialized" and e.get("causationid") == init["id"]:
                root = e["data"]["portfolio_id"]
                accounts = {
                    x["id"]: {"type": x["type"], "balance": Decimal(x["balance"])}
                    for x in e["data"]["accounts"]
                }
            elif e["type"] == COMMAND_REJECTED and e.get("causationid") == init["id"]:
                raise CliError(f"initialize rejected: {e['data']}", 1, e["data"])
    print(
        f"portfolio tree {root}: {a.capital} {a.template}, simulating {a.years} years from {start.date()}"
    )
    bar = Progress("simulate-decade", 52 * a.years, unit="weeks")
    for week in range(52 * a.years):
        week_type = rng.choices(list(WEEK_RETURN_PCT), weights=[6, 3, 2, 1, 1, 3, 1, 3, 2, 1, 1])[0]
        thursday = start + timedelta(weeks=week)
        batch = []
        for acc_id, acc in accounts.items():
            if acc.get("status", "active") != "active" or acc["balance"] <= 0:
                continue
            at = thursday if acc["type"] == "generation" else thursday - timedelta(days=3)
            fill = _fill(acc_id, acc, week_type, at, rng)
            if fill is not None:
                batch.append(
                    new_event(
                        "ws4.trade.filled",
                        "simulator/ws4",
                        fill,
                        subject=acc_id,
                        authorization=f"Bearer {c.token}",
                    )
                )
                batch[-1]["time"] = at.isoformat()
        # As WS2 and WS4 would: the week's type, then its fills, through the integration service.
        classified = {"week_start": (thursday - timedelta(days=3)).date().isoformat(),
                      "week_type": week_type, "confidence": "0.90"}  # fmt: skip
        bearer = f"Bearer {c.token}"
        pipe = c.redis.pipeline(transaction=False)
        ws2 = new_event("ws2.week.classified", "simulator/ws2", classified, authorization=bearer)
        pipe.xadd(c.streams.key(WS2_EVENTS), ws2)  # type: ignore[arg-type]
        for fields in batch:
            pipe.xadd(c.streams.key(WS4_EVENTS), fields)  # type: ignore[arg-type]
        await pipe.execute()
        fills += len(batch)
        waiting, deadline = {f["id"] for f in batch}, time.monotonic() + c.timeout
        while waiting:
            if time.monotonic() > deadline:
                raise CliError(
                    f"{len(waiting)} fills of week {week} had no outcome in {c.timeout:g}s", TIMEOUT
                )
            cursor, evs = await _read(c, events_key, cursor)
            for e in evs:
                waiting.discard(e.get("causationid", ""))
                forks, merges = _apply(e, accounts, born, forks, merges)
        if week % 52 == 51 or a.verbose:
            value = sum((x["balance"] for x in accounts.values()), start=Decimal(0))
            bar.note(f"year {week // 52 + 1:>2}: value {value:>18,.2f}  forks {forks:>4}  merges {merges:>4}  "
                     f"accounts {sum(1 for x in accounts.values() if x.get('status', 'active') == 'active'):>4}  "
                     f"fills {fills:>7}  {time.monotonic() - began:6.1f}s")  # fmt: skip
        bar.advance()
    bar.close()
    value = sum((x["balance"] for x in accounts.values()), start=Decimal(0))
    summary = {"portfolio_id": root, "years": a.years, "forks": forks, "merges": merges, "fills": fills,
               "initial_capital": a.capital, "final_value": f"{value:.2f}", "elapsed_seconds": round(time.monotonic() - began, 1)}  # fmt: skip
    emit(a, summary)
    return OK


def _fill(
    acc_id: str, acc: dict[str, Any], week_type: str, at: datetime, rng: random.Random
) -> dict[str, Any] | None:
    pct = (
        Decimal(WEEK_RETURN_PCT[week_type])
        * TARGET_SHARE[acc["type"]]
        * Decimal(rng.uniform(0.8, 1.2)).quantize(Decimal("0.01"))
    )
    target = acc["balance"] * pct / 100
    if abs(target) < 50 or week_type == "W-IDL":
        return None
    side = "sell_to_open" if target > 0 else "buy_to_close"
    price = (abs(target) / 1000).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
    delta = {"generation": "-0.45", "revenue": "-0.35", "compounding": "-0.25"}[acc["type"]]
    return {
        "fill_id": uuid4().hex, "order_id": uuid4().hex[:12], "account_id": acc_id, "symbol": "NVDA",
        "instrument_type": "option", "option_type": "put", "strike": "100.00", "expiration": (at + timedelta(days=8)).date().isoformat(),
        "delta": delta, "side": side, "quantity": 10, "price": str(price), "multiplier": 100, "commission": "6.50",
        "filled_at": at.isoformat(),
    }  # fmt: skip


def _apply(
    e: dict[str, Any],
    accounts: dict[str, dict[str, Any]],
    born: dict[str, dict[str, Any]],
    forks: int,
    merges: int,
) -> tuple[int, int]:
    """Follow the tree from its events; accounts created by a fork join once the fork is ours."""
    d = e["data"]
    if e["type"] == "alluse.account.balance_changed":
        for pool in (accounts, born):
            if d["account_id"] in pool:
                pool[d["account_id"]]["balance"] = Decimal(d["balance"])
    elif e["type"] == "alluse.account.created":
        x = d["account"]
        born[x["id"]] = {"type": x["type"], "balance": Decimal(x["balance"])}
    elif e["type"] == "alluse.account.forked" and d["account_id"] in accounts:
        forks += 1
        for child in d["child_accounts"].values():
            accounts[child] = born.pop(child)
    elif e["type"] == "alluse.account.merged" and d["target_account_id"] in accounts:
        merges += 1
        for acc in d["accounts"]:
            accounts[acc]["status"] = "merged"
    return forks, merges


async def _read(c: StreamClient, key: str, cursor: Any) -> tuple[Any, list[dict[str, Any]]]:
    raw_got: Any = await c.redis.xread({key: cursor}, count=5000, block=2000)
    got: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = raw_got
    out: list[dict[str, Any]] = []
    for _, entries in got or []:
        for entry_id, raw in entries:
            cursor = entry_id
            fields: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
            fields["data"] = json.loads(fields.get("data", "{}"))
            out.append(fields)
    return cursor, out


def _thursday(at: datetime) -> datetime:
    return (at - timedelta(days=(at.weekday() - 3) % 7)).replace(
        hour=15, minute=0, second=0, microsecond=0
    )


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
    p = _add(sub, "simulate-decade", simulate_decade, "ten simulated years of one portfolio tree, through the real service",
             "  alluse simulate-decade --capital 250000.00 --template moderate --seed 7", command=False)  # fmt: skip
    p.add_argument("--capital", default="250000.00")
    p.add_argument("--template", default="moderate")
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--verbose", action="store_true", help="a line per simulated week")
