"""Progress on stderr, figures on stdout."""

import sys
from dataclasses import dataclass

PROTOTYPE_CREATES_PER_S = 908.4  # the reference prototype: in-process SQLite, nothing durable
TARGET_CREATES_PER_S = 3000.0
TARGET_P99_MS = 50.0


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Result:
    """One phase: commands sent, outcomes seen, span from first XADD to last outcome."""

    name: str
    count: int
    seconds: float
    latencies_ms: list[float]
    rejected: int = 0
    offered_per_s: float | None = None

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    def line(self) -> str:
        offered = f" at {self.offered_per_s:,.0f}/s offered" if self.offered_per_s else ""
        rejected = f"  ({self.rejected} rejected!)" if self.rejected else ""
        return (
            f"  {self.name:<34}{self.per_second:>9,.1f}/s   p50 {self.p50:>7.1f} ms"
            f"   p99 {self.p99:>7.1f} ms   n={self.count}{offered}{rejected}"
        )


def verdict(ok: bool) -> str:
    return "meets target" if ok else "BELOW target"


def print_report(
    *,
    servers: str,
    batch_size: int,
    creates: Result,
    deposits: Result,
    paced: Result,
    bare: Result | None,
) -> None:
    out = sys.stdout
    print(
        f"\nALL-USE account service, through Redis Streams ({servers}; batch size {batch_size})",
        file=out,
    )
    print(
        "  counted from each command's XADD to its outcome event on the account events stream\n",
        file=out,
    )
    print(creates.line(), file=out)
    print(deposits.line(), file=out)
    print(paced.line(), file=out)
    if bare is not None:
        print(bare.line(), file=out)
    print("", file=out)
    print(
        f"  reference prototype (in-process SQLite, nothing durable): {PROTOTYPE_CREATES_PER_S:,.1f} creations/s",
        file=out,
    )
    ratio = creates.per_second / PROTOTYPE_CREATES_PER_S
    print(f"  service vs prototype: {ratio:.2f}x", file=out)
    ok = creates.per_second >= TARGET_CREATES_PER_S
    print(
        f"  target >= {TARGET_CREATES_PER_S:,.0f} creations/s: {creates.per_second:,.1f}/s, {verdict(ok)}",
        file=out,
    )
    ok = paced.p99 < TARGET_P99_MS
    print(
        f"  target p99 < {TARGET_P99_MS:.0f} ms at {paced.offered_per_s or 0:,.0f}/s: {paced.p99:.1f} ms, {verdict(ok)}",
        file=out,
    )
    if bare is not None and bare.per_second > 0:
        print(
            f"  service / bare loop (creations): {creates.per_second / bare.per_second:.2f}",
            file=out,
        )
