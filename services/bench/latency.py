"""Fill latency as a trading engine feels it: each ws4.trade.filled from its XADD to its
`alluse.account.balance_changed` on the public lifecycle stream, at a paced offered load (an
open loop: fills go out at their due time whether or not earlier ones are done), on the whole
platform as `make run` starts it (AOF on, durability auto: every event confirmed fsynced).
Reported as p50 / p99 / max per rate, and drawn (var/bench/latency.png); and each fill's time
split into its hops (`Hops`), from the times the streams carry: when the account service
applied it (its event's `time`), when the relay published that event (its entry id on the
account events stream), when the integration service republished it (its entry id on the
lifecycle stream), and when the engine read it."""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

from services.bench.load import Command, Load
from services.bench.profile import Cpu, watched
from services.bench.report import percentile, progress
from shared.contracts.streams import ACCOUNT_EVENTS, ACCOUNT_LIFECYCLE
from shared.infra.stream.messaging import Entry

RATES = (50.0, 200.0, 500.0, 1000.0)  # fills per second offered
TARGET_P99_MS = 50.0  # at 500 fills/s
TARGET_RATE = 500.0
BALANCE_CHANGED = b"alluse.account.balance_changed"
PAGE = 5000  # entries per XRANGE while the streams are read back


# A fill's hops, in order: (name, the stamp it ends at; it starts at the previous one's end).
HOPS = (
    ("XADD -> applied by the account service", "applied"),
    ("-> its event published (relay)", "relayed"),
    ("-> republished on lifecycle", "republished"),
    ("-> read by the engine", "read"),
)


@dataclass(frozen=True)
class Hops:
    """Milliseconds each fill spent in each hop (HOPS), of the fills whose stamps were found."""

    ms: dict[str, list[float]]

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {"p50_ms": round(percentile(v, 50), 1), "p99_ms": round(percentile(v, 99), 1)}
            for name, v in self.ms.items()
            if v
        }

    def lines(self) -> list[str]:
        return [
            f"      {name:<40} p50 {percentile(v, 50):>7.1f} ms   p99 {percentile(v, 99):>7.1f} ms"
            for name, _ in HOPS
            if (v := self.ms.get(name))
        ]


@dataclass(frozen=True)
class Latency:
    offered_per_s: float
    latencies_ms: list[float]
    hops: Hops | None = None
    cpu: Cpu | None = None  # each service's, from the first XADD to the last outcome read

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
        line = (
            f"  fills paced at {self.offered_per_s:>6,.0f}/s   p50 {self.p50:>7.1f} ms"
            f"   p99 {self.p99:>7.1f} ms   max {self.max:>7.1f} ms   n={len(self.latencies_ms)}"
        )
        cpu = [self.cpu.line(len(self.latencies_ms))] if self.cpu and self.cpu.seconds else []
        return "\n".join([line, *cpu, *(self.hops.lines() if self.hops else [])])


async def paced(
    load: Load,
    accounts: Sequence[str],
    rate: float,
    seconds: float,
    pids: Mapping[str, int] | None = None,
) -> Latency:
    """`rate` x `seconds` fills, each XADDed at its due time (those due together pipelined);
    with `pids`, the CPU each of those service processes spent on them."""
    n = max(1, round(rate * seconds))
    progress(f"{n} WS4 fills paced at {rate:,.0f}/s (XADD -> balance_changed on lifecycle)")
    cmds = [load.fill(accounts[i % len(accounts)]) for i in range(n)]
    token = await load.engine.token()
    wall = time.time() - time.monotonic()  # the streams' stamps are wall-clock times
    since = f"{int((time.monotonic() + wall) * 1000)}-0"
    with watched(pids or {}, f"fills paced at {rate:,.0f}/s", None) as cpu:
        await _offer(load, cmds, rate, token)
    refused = {str(c.outcome) for c in cmds} - {"applied"}
    if refused:
        raise RuntimeError(f"paced fills refused as {sorted(refused)}")
    hops = await split(load, cmds, since, wall)
    ms = [((c.done_at or 0.0) - c.sent_at) * 1000 for c in cmds]
    return Latency(rate, ms, hops, cpu if pids else None)


async def _offer(load: Load, cmds: Sequence[Command], rate: float, token: str) -> None:
    """Send `cmds` at `rate` (an open loop) and wait until each has its outcome."""
    n = len(cmds)
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


async def split(load: Load, cmds: Sequence[Command], since: str, wall: float) -> Hops:
    """Each fill's hops (HOPS), from its balance_changed on the account events stream (its
    `time`: applied; its entry id: published) and on the lifecycle stream (its entry id)."""
    events = await _balance_changes(load, load.streams.key(ACCOUNT_EVENTS), since)
    public = await _balance_changes(load, load.streams.key(ACCOUNT_LIFECYCLE), since)
    return hops_of(cmds, events, public, wall)


def hops_of(
    cmds: Sequence[Command],
    events: Mapping[str, tuple[float, str]],
    public: Mapping[str, tuple[float, str]],
    wall: float,
) -> Hops:
    """`events`, `public`: command id -> (entry time in s, the event's `time`) on the account
    events and the lifecycle stream; `wall`: wall clock minus the monotonic clock."""
    ms: dict[str, list[float]] = {name: [] for name, _ in HOPS}
    for c in cmds:
        if c.id not in events or c.id not in public or c.done_at is None:
            continue
        stamps = {
            "applied": datetime.fromisoformat(events[c.id][1]).timestamp(),
            "relayed": events[c.id][0],
            "republished": public[c.id][0],
            "read": c.done_at + wall,
        }
        last = c.sent_at + wall
        for name, stamp in HOPS:
            ms[name].append((stamps[stamp] - last) * 1000)
            last = stamps[stamp]
    return Hops(ms)


async def _balance_changes(load: Load, stream: str, since: str) -> dict[str, tuple[float, str]]:
    """Command id -> (its balance_changed's entry time in s, its `time`) on `stream` since."""
    found: dict[str, tuple[float, str]] = {}
    start = since
    while page := cast(list[Entry], await load.redis.xrange(stream, min=start, count=PAGE)):
        for entry_id, fields in page:
            if fields.get(b"type") == BALANCE_CHANGED and b"causationid" in fields:
                stamp = int(entry_id.split(b"-")[0]) / 1000
                found[fields[b"causationid"].decode()] = (stamp, fields[b"time"].decode())
        start = "(" + page[-1][0].decode()
    return found


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
    load: Load,
    accounts: Sequence[str],
    seconds: float,
    settle: Sequence[str],
    pids: Mapping[str, int] | None = None,
) -> list[Latency]:
    found = []
    for rate in RATES:
        progress("waiting until the platform is idle (lifecycle and audit streams settled)")
        await quiet(load, settle)
        found.append(await paced(load, accounts, rate, seconds, pids))
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
