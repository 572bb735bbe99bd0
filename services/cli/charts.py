"""How `alluse tree` draws a portfolio tree: as indented text, and its growth as an SVG chart."""

from decimal import Decimal
from typing import Any


def text_tree(data: dict[str, Any]) -> str:
    """The portfolio tree, children under their parent, with value and fork / merge facts."""
    nodes = {n["portfolio_id"]: n for n in data["portfolios"]}
    kids: dict[str | None, list[str]] = {}
    for n in data["portfolios"]:
        kids.setdefault(n["parent_id"] if n["parent_id"] in nodes else None, []).append(
            n["portfolio_id"]
        )
    cash = f", cash {Decimal(data['total_cash']):,.2f}" if "total_cash" in data else ""
    lines = [
        f"tree {data['portfolio_id']}: {data['forks']} forks, {data['merges']} merges, "
        f"value {Decimal(data['total_value']):,.2f}{cash}"
    ]

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
        shapes.append(
            f'<polygon points="{upper} {lower}" fill="{colours[g % len(colours)]}" fill-opacity="0.8">'
            f"<title>generation {g}</title></polygon>"
        )
        below = above
    first, last = points[0]["at"][:10], points[-1]["at"][:10]
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
            f'<text x="{pad}" y="20">Portfolio tree value by generation, {first} to {last}; top {top:,.0f} USD</text>',
            *shapes,
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
            f'<text x="{pad}" y="{height - pad + 18}">{first}</text><text x="{width - pad - 70}" y="{height - pad + 18}">{last}</text>',
            *(
                f'<text x="{width - pad + 5}" y="{pad + 16 * i}" fill="{colours[g % len(colours)]}">gen {g}</text>'
                for i, g in enumerate(gens)
            ),
            "</svg>",
        ]
    )
