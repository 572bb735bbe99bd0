"""What the pages show, shaped from query answers and events. Pure: no I/O.

Money stays Decimal until it is formatted; a figure the platform sent that is not a number
is shown as it came.
"""

from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.contracts.vocabulary import AccountType

TYPE_ORDER = {t.value: i for i, t in enumerate(AccountType)}  # as the rules list them
SHORT = {
    AccountType.GENERATION.value: "Gen-Acc",
    AccountType.REVENUE.value: "Rev-Acc",
    AccountType.COMPOUNDING.value: "Com-Acc",
}
ZERO = Decimal("0.00")


def dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ZERO


def usd(value: Any) -> str:
    """1234567.5 -> 1,234,567.50 (the page adds no currency sign: every figure is USD)."""
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)


def value_of(account: dict[str, Any]) -> Decimal:
    """Cash plus marked positions, when the platform reports them (docs/rules.md section 11); else
    cash."""
    if "value" in account:
        return dec(account["value"])
    marked = sum((dec(p.get("market_value", 0)) for p in account.get("positions") or []), ZERO)
    return dec(account.get("balance")) + marked


def portfolios(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accounts grouped by portfolio, each with its totals; largest first."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in accounts:
        groups[a["portfolio_id"]].append(a)
    out = [summary(pid, members) for pid, members in groups.items()]
    return sorted(out, key=lambda p: (-p["value"], p["id"]))


def summary(portfolio_id: str, accounts: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(accounts, key=lambda a: (TYPE_ORDER.get(a["type"], 9), a["id"]))
    statuses = sorted({a["status"] for a in ordered})
    return {
        "id": portfolio_id,
        "accounts": ordered,
        "cash": sum((dec(a["balance"]) for a in ordered), ZERO),
        "value": sum((value_of(a) for a in ordered), ZERO),
        "available": sum((dec(a["available"]) for a in ordered), ZERO),
        "buffer": sum((dec(a["cash_buffer"]) for a in ordered), ZERO),
        "status": statuses[0] if len(statuses) == 1 else "mixed",
        "names": ", ".join(sorted({a["name"] for a in ordered if a.get("name")})),
    }


def matches(p: dict[str, Any], text: str, status: str) -> bool:
    """The portfolios page's filter: id or account name contains `text`; any account in `status`."""
    needle = text.lower()
    found = not needle or needle in p["id"] or needle in p["names"].lower()
    found = found or any(needle in a["id"] for a in p["accounts"])
    return found and (not status or any(a["status"] == status for a in p["accounts"]))


def tree(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of a tree answer nested under their parents: [{node, children: [...]}, ...]."""
    nodes = {n["portfolio_id"]: {**n, "children": []} for n in answer.get("portfolios", [])}
    roots: list[dict[str, Any]] = []
    for n in nodes.values():
        parent = nodes.get(n["parent_id"] or "")
        (parent["children"] if parent else roots).append(n)
    return roots


PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#ec4899", "#64748b")


def chart(points: list[dict[str, Any]], *, width: int = 720, height: int = 260) -> dict[str, Any]:
    """A stacked area per generation of the tree's value over time, in SVG coordinates."""
    if not points:
        return {"areas": [], "width": width, "height": height, "ticks": [], "dots": []}
    points = points * 2 if len(points) == 1 else points  # one week: a flat band, not a dot
    gens = sorted({int(g) for p in points for g in p["generations"]})
    top = max(dec(p["total"]) for p in points) or Decimal(1)
    left, right, pad = 64, 12, 18
    span = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return round(left + i * (width - left - right) / span, 1)

    def y(v: Decimal) -> float:
        return round(height - pad - float(v / top) * (height - 2 * pad), 1)

    below = [ZERO] * len(points)
    areas = []
    for g in gens:
        above = [
            b + dec(p["generations"].get(str(g), 0)) for b, p in zip(below, points, strict=True)
        ]
        upper = [f"{x(i)},{y(v)}" for i, v in enumerate(above)]
        lower = [f"{x(i)},{y(v)}" for i, v in reversed(list(enumerate(below)))]
        areas.append(
            {
                "generation": g,
                "colour": PALETTE[g % len(PALETTE)],
                "points": " ".join(upper + lower),
            }
        )
        below = above
    ticks = [{"y": y(top * k / 4), "label": f"{top * k / 4:,.0f}"} for k in range(5)]
    dots = [
        {"x": x(i), "y": y(dec(p["total"])), "at": p["at"][:10], "total": usd(p["total"])}
        for i, p in enumerate(points)
    ]
    return {
        "areas": areas,
        "width": width,
        "height": height,
        "ticks": ticks,
        "dots": dots,
        "first": points[0]["at"][:10],
        "last": points[-1]["at"][:10],
        "left": left,
    }


def event_row(entry_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """One lifecycle event as a line of the live feed: when, what, which account, in short."""
    data = fields.get("data") or {}
    kind = str(fields.get("type", "")).removeprefix("alluse.")
    account = fields.get("subject") or data.get("account_id") or ""
    return {
        "id": entry_id,
        "type": fields.get("type", ""),
        "kind": kind,
        "time": str(fields.get("time", ""))[:19].replace("T", " "),
        "account": account,
        "summary": describe(str(fields.get("type", "")), data),
    }


def describe(type_: str, d: dict[str, Any]) -> str:
    tx = d.get("transaction") or {}
    match type_:
        case "alluse.account.balance_changed":
            return f"{tx.get('type', 'change')} {usd(tx.get('amount'))}, balance {usd(d.get('balance'))}"
        case "alluse.command.rejected":
            return f"rejected {d.get('code')}: {d.get('reason')}"
        case "alluse.account.status_changed":
            return f"{d.get('from_status')} -> {d.get('to_status')}" + (
                f" ({d['reason']})" if d.get("reason") else ""
            )
        case "alluse.account.created":
            a = d.get("account") or {}
            return f"{SHORT.get(a.get('type', ''), a.get('type'))} {usd(a.get('balance'))}"
        case "alluse.account.forked":
            return (
                f"surplus {usd(d.get('surplus'))} into portfolio {d.get('child_portfolio_id', '')}"
            )
        case "alluse.account.protocol_violation":
            rules = "; ".join(map(str, d.get("violations") or [])) or "protocol violation"
            return f"{rules} (adherence {d.get('adherence_score')})"
        case "alluse.account.merged":
            return f"{usd(d.get('total'))} into {d.get('target_account_id')}"
        case "alluse.account.drawdown_breached":
            return f"drawdown {d.get('drawdown_pct')} % > {d.get('max_drawdown_pct')} %"
        case "alluse.week.changed":
            return f"week {d.get('week_start')}: {d.get('week_type')}"
    return ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, str | int))[:160]
