"""Fill latency as a trading engine feels it: each ws4.trade.filled from its XADD to its
`alluse.account.balance_changed` on the public lifecycle stream, at a paced offered load (an
open loop: fills go out at their due time whether or not earlier ones are done), on the whole
platform as `make run` starts it (AOF on, durability auto: every event confirmed fsynced).
Reported as p50 / p99 / max per rate, and drawn (var/bench/latency.png)."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.bench.load import Command, Load
from services.bench.report import percentile, progress

RATES = (50.0, 200.0, 500.0, 1000.0)  # fills per second offered
TARGET_P99_MS = 50.0  # at 500 fills/s
TARGET_RATE = 500.0


@dataclass(frozen=True)
class Latency:
    offered_per_s: float
    latencies_ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def max(self) -> float:
        return max(self.latencies_ms)

    def line(self) -> str:
        return (
            f"  fills paced at {self.offered_per_s:>6,.0f}/s   p50 {self.p50:>7.1f} ms"
            f"   p99 {self.p99:>7.1f} ms   max {self.max:>7.1f} ms   n={len(self.latencies_ms)}"
        )


async def paced(load: Load, accounts: Sequence[str], rate: float, seconds: float) -> Latency:
    """`rate` x `seconds` fills, each XADDed at its due time (those due together pipelined)."""
    n = max(1, round(rate * seconds))
    progress(f"{n} WS4 fills paced at {rate:,.0f}/s (XADD -> balance_changed on lifecycle)")
    cmds = [load.fill(accounts[i % len(accounts)]) for i in range(n)]
    token = await load.engine.token()
    start = time.monotonic()
    sent = 0
    while sent < n:
        due = min(n, int((time.monotonic() - start) * rate) + 1)
        if due > sent:
            await send(load, cmds[sent:due], token)
            sent = due
        wait = start + sent / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    deadline = time.monotonic() + 120
    while any(c.done_at is None for c in cmds):
        if time.monotonic() > deadline:
            missing = sum(c.done_at is None for c in cmds)
            raise TimeoutError(f"{missing} of {n} paced fills without balance_changed")
        await asyncio.sleep(0.01)
    refused = {str(c.outcome) for c in cmds} - {"applied"}
    if refused:
        raise RuntimeError(f"paced fills refused as {sorted(refused)}")
    return Latency(rate, [((c.done_at or 0.0) - c.sent_at) * 1000 for c in cmds])


async def send(load: Load, cmds: Sequence[Command], token: str) -> None:
    pipe = load.redis.pipeline(transaction=False)
    now = time.monotonic()  # the engine's clock starts before its XADD
    for cmd in cmds:
        cmd.fields["authorization"] = f"Bearer {token}"
        cmd.attempts, cmd.sent_at = 1, now
        load.commands[cmd.id] = cmd
        pipe.xadd(cmd.stream, cmd.fields)  # type: ignore[arg-type]
    await pipe.execute()


async def quiet(load: Load, streams: Sequence[str], still: float = 1.0) -> None:
    """Until the platform has finished what came before: `streams` (the lifecycle and audit
    streams) have grown by nothing for `still` seconds and every group reading them is done.
    A burst's outcome is counted at its balance_changed, while the rest of its events and its
    audit records are still on their way; a paced run started then would time that tail."""
    last: list[int] = []
    since = time.monotonic()
    deadline = since + 300
    while time.monotonic() < deadline:
        pipe = load.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        got = await pipe.execute()
        lengths = [int(n) for n in got[::2]]
        busy = any(g["pending"] or g.get("lag") for groups in got[1::2] for g in groups)
        if lengths != last or busy:
            last, since = lengths, time.monotonic()
        elif time.monotonic() - since >= still:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the platform did not settle: {dict(zip(streams, last, strict=False))}")


async def phases(
    load: Load, accounts: Sequence[str], seconds: float, settle: Sequence[str]
) -> list[Latency]:
    found = []
    for rate in RATES:
        progress("waiting until the platform is idle (lifecycle and audit streams settled)")
        await quiet(load, settle)
        found.append(await paced(load, accounts, rate, seconds))
    return found


def chart(path: Path, found: Sequence[Latency]) -> Path:
    """p50, p99 and max against the offered rate, the target drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [f.offered_per_s for f in found]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values, style in (
        ("p50", [f.p50 for f in found], "o-"),
        ("p99", [f.p99 for f in found], "s-"),
        ("max", [f.max for f in found], "^--"),
    ):
        ax.plot(rates, values, style, label=label)
    ax.axhline(TARGET_P99_MS, color="#b03030", linewidth=0.8, label="p99 target (at 500/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(rates, [f"{r:,.0f}" for r in rates])
    ax.set_xlabel("WS4 fills offered per second (paced)")
    ax.set_ylabel("ms, XADD -> balance_changed on lifecycle")
    ax.set_title("Fill latency through three services (make run defaults, durability on)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
