"""Soak's table, chart (matplotlib, no display needed) and pass line."""

import re
from pathlib import Path

from services.bench.samples import MB, Sample, plateaued

MEMORY_SLACK = 2 * MB  # allocator noise
STREAM_SLACK = 200  # entries in flight at the moment of a sample
INBOX_SLACK = 500


def print_table(taken: list[Sample]) -> None:
    names = sorted({n for s in taken for n in s.rss})
    head = f"{'t (s)':>6} {'redis MB':>9} {'entries':>8} {'inbox':>8} {'outbox':>7} {'ledger':>8} {'lag':>6} {'pending':>7}"
    print("\n" + head + "".join(f" {n[:11] + ' MB':>14}" for n in names))
    for s in taken:
        print(
            f"{s.at:6.0f} {s.used_memory / MB:9.1f} {sum(s.streams.values()):8d} "
            f"{s.rows['inbox']:8d} {s.rows['outbox']:7d} {s.rows['ledger']:8d} {s.lag:6d} "
            f"{s.pending:7d}" + "".join(f" {s.rss.get(n, 0) / MB:14.1f}" for n in names)
        )
    if not taken:
        return
    half = taken[len(taken) // 2]
    print(
        f"\n{'stream':<48} {'first':>8} {'t=' + format(half.at, '.0f') + 's':>8} {'last':>8} {'max':>8}"
    )
    for name in sorted({n for s in taken for n in s.streams}):
        series = [s.streams.get(name, 0) for s in taken]
        print(
            f"{name:<48} {series[0]:8d} {half.streams.get(name, 0):8d} {series[-1]:8d} {max(series):8d}"
        )


def verdict(taken: list[Sample], retention: dict[str, str]) -> tuple[bool, str]:
    grew = []
    if not plateaued([s.used_memory for s in taken], MEMORY_SLACK):
        grew.append("redis used_memory")
    if not plateaued([s.rows["inbox"] for s in taken], INBOX_SLACK):
        grew.append("inbox rows")
    for name in sorted({n for s in taken for n in s.streams}):
        if not plateaued([s.streams.get(name, 0) for s in taken], STREAM_SLACK):
            grew.append(name)
    settings = ", ".join(f"{k.removeprefix('ALLUSE_')}={v}" for k, v in retention.items())
    if len(taken) < 4:
        return (
            False,
            f"soak FAIL: {len(taken)} samples are too few to judge (retention: {settings})",
        )
    if grew:
        return (
            False,
            f"soak FAIL: still growing over the last half: {', '.join(grew)} (retention: {settings})",
        )
    return True, (
        f"soak PASS: Redis memory, every stream's length and the inbox flat over the "
        f"last half (retention: {settings})"
    )


PARTITION = re.compile(r"\{(?P<stream>[^}]*)\}\.p\d+$")


def chart_lines(taken: list[Sample]) -> dict[str, list[int]]:
    """One line per logical stream: its partitions summed, so the legend stays readable."""
    lines: dict[str, list[int]] = {}
    for name in sorted({n for s in taken for n in s.streams}):
        found = PARTITION.search(name)
        label = f"{found['stream']} (partitions)" if found else name
        series = [s.streams.get(name, 0) for s in taken]
        old = lines.get(label, [0] * len(taken))
        lines[label] = [a + b for a, b in zip(old, series, strict=True)]
    return lines


def chart(taken: list[Sample], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.at for s in taken]
    fig, ax = plt.subplots(2, 2, figsize=(14, 9), sharex=True)
    ax[0][0].plot(t, [s.used_memory / MB for s in taken])
    ax[0][0].set_title("Redis used_memory (MB)")
    for label, series in chart_lines(taken).items():
        ax[0][1].plot(t, series, label=label)
    ax[0][1].set_title("stream lengths (entries)")
    ax[0][1].legend(fontsize=6)
    for key in ("inbox", "outbox", "ledger"):
        ax[1][0].plot(t, [s.rows[key] for s in taken], label=key)
    ax[1][0].plot(t, [s.lag for s in taken], label="consumer lag")
    ax[1][0].plot(t, [s.pending for s in taken], label="pending")
    ax[1][0].set_title("PostgreSQL rows, lag and pending")
    ax[1][0].legend(fontsize=7)
    for name in sorted({n for s in taken for n in s.rss}):
        ax[1][1].plot(t, [s.rss.get(name, 0) / MB for s in taken], label=name)
    ax[1][1].set_title("service RSS (MB)")
    ax[1][1].legend(fontsize=7)
    for a in ax[1]:
        a.set_xlabel("seconds into the run")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
