"""The figures of one `make bench` run, with the ratios its targets are stated in: printed,
written as JSON (var/bench/bench.json) and drawn as PNGs (var/bench/bench.png, the rates;
var/bench/latency.png, the paced fill latency)."""

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.bench import latency
from services.bench.latency import Latency
from services.bench.report import Result
from services.bench.scale import Rate

TARGETS = {  # what each ratio or figure should reach on the project's 2-core machine
    "service / bare loop (creations)": 0.8,
    "fills through three services / deposits": 0.7,
    "2 replicas / 1 replica (deposits)": 1.5,
    "platform deposits / peer": 1.5,
}


def ratios(
    creates: Result | None,
    bare: Result | None,
    rates: dict[str, Rate],
    peer: Result | None = None,
) -> dict[str, float]:
    out: dict[str, float] = {}
    if peer is not None and peer.per_second > 0 and "deposits" in rates:
        out["platform deposits / peer"] = rates["deposits"].per_second / peer.per_second
    if creates is not None and bare is not None and bare.per_second > 0:
        out["service / bare loop (creations)"] = creates.per_second / bare.per_second
    one = rates.get("deposits")
    if one is not None and one.per_second > 0:
        if "fills" in rates:
            out["fills through three services / deposits"] = (
                rates["fills"].per_second / one.per_second
            )
        for n in (2, 3):
            if f"replicas-{n}" in rates:
                out[f"{n} replicas / 1 replica (deposits)"] = (
                    rates[f"replicas-{n}"].per_second / one.per_second
                )
    return out


def print_peer(peer: Result, results: list[Result], rates: dict[str, Rate]) -> None:
    """Each throughput figure of the run as a ratio to the peer's transfers per second."""
    out = sys.stdout
    print(f"\nThe peer, in the same run: {peer.line().strip()}", file=out)
    print("  each figure / the peer's transfers per second:", file=out)
    named = [(r.name, r.per_second) for r in results if r.offered_per_s is None]
    named += [(r.name, r.per_second) for r in rates.values()]
    for name, value in named:
        print(f"  {name:<44}{value / peer.per_second:>6.2f}", file=out)


def print_platform(
    rates: dict[str, Rate],
    found: dict[str, float],
    paced: Result | None,
    fills: list[Latency] | None = None,
) -> None:
    out = sys.stdout
    if rates:
        print(
            "\nWhole platform on scratch servers, XADD to outcome on the lifecycle stream", file=out
        )
        for rate in rates.values():
            print(rate.line(), file=out)
    for f in fills or []:
        print(f.line(), file=out)
    print("", file=out)
    for name, value in found.items():
        target = TARGETS.get(name)
        mark = (
            ""
            if target is None
            else f"   target >= {target}: {'met' if value >= target else 'NOT met'}"
        )
        print(f"  {name:<44}{value:>6.2f}{mark}", file=out)
    if paced is None:  # --platform-only
        return
    met = paced.p99 < 50.0
    print(
        f"  {'p99 at ' + format(paced.offered_per_s or 0, ',.0f') + '/s offered (ms)':<44}"
        f"{paced.p99:>6.1f}   target < 50: {'met' if met else 'NOT met'}",
        file=out,
    )
    for f in fills or []:
        if f.offered_per_s == latency.TARGET_RATE:
            met = f.p99 < latency.TARGET_P99_MS
            print(
                f"  {'fill p99 at ' + format(f.offered_per_s, ',.0f') + '/s paced (ms)':<44}"
                f"{f.p99:>6.1f}   target < {latency.TARGET_P99_MS:.0f}: {'met' if met else 'NOT met'}",
                file=out,
            )


def write(
    directory: Path,
    *,
    servers: str,
    results: list[Result],
    rates: dict[str, Rate],
    found: dict[str, float],
    fills: list[Latency] | None = None,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "servers": servers,
        "phases": [
            {
                "name": r.name,
                "count": r.count,
                "per_second": round(r.per_second, 1),
                "p50_ms": round(r.p50, 1),
                "p99_ms": round(r.p99, 1),
                "offered_per_s": r.offered_per_s,
            }
            for r in results
        ],
        "platform": [
            {"name": r.name, "count": r.count, "per_second": round(r.per_second, 1)}
            for r in rates.values()
        ],
        "fill_latency": [
            {
                "offered_per_s": f.offered_per_s,
                "count": len(f.latencies_ms),
                "p50_ms": round(f.p50, 1),
                "p99_ms": round(f.p99, 1),
                "max_ms": round(f.max, 1),
                "hops": f.hops.summary() if f.hops else {},
                "cpu_ms_per_fill": (
                    {k: round(v, 3) for k, v in f.cpu.per_command_ms(len(f.latencies_ms)).items()}
                    if f.cpu
                    else {}
                ),
                "machine_busy": round(f.cpu.busy, 3) if f.cpu and f.cpu.busy is not None else None,
            }
            for f in fills or []
        ],
        "ratios": {k: round(v, 3) for k, v in found.items()},
        "targets": TARGETS,
    }
    data = directory / "bench.json"
    data.write_text(json.dumps(doc, indent=2) + "\n")
    paths = [data, chart(directory / "bench.png", results, rates)]
    if fills:
        paths.append(latency.chart(directory / "latency.png", fills))
    return paths


def chart(path: Path, results: list[Result], rates: dict[str, Rate]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in results] + [r.name for r in rates.values()]
    values = [r.per_second for r in results] + [r.per_second for r in rates.values()]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(names) + 1.5))
    ax.barh(names[::-1], values[::-1], color="#3b6ea5")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:,.0f}/s", va="center", fontsize=8)
    ax.set_xlabel("commands per second (XADD to outcome)")
    ax.set_title("make bench")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
