"""A progress bar with rate and ETA for long operator commands, drawn on stderr (TTYs only).

Scripts piping the output see nothing of it: stdout keeps only results, and a bar on a
non-terminal stderr would fill log files with carriage returns.
"""

import sys
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 28


def clock_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render(label: str, done: int, total: int | None, elapsed: float, unit: str) -> str:
    """One line: label, bar, count, rate and ETA (no bar or ETA when the total is unknown)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    speed = f"{rate:,.1f} {unit}/s"
    if not total:
        return f"{label} {done:,} {unit}  {speed}  {clock_text(elapsed)}"
    share = min(done / total, 1.0)
    filled = int(WIDTH * share)
    bar = "#" * filled + "-" * (WIDTH - filled)
    if done >= total:
        tail = f"done in {clock_text(elapsed)}"
    elif rate > 0:
        tail = f"ETA {clock_text((total - done) / rate)}"
    else:
        tail = "ETA --:--"
    return f"{label} [{bar}] {done:,}/{total:,} {unit} {share:4.0%}  {speed}  {tail}"


class Progress:
    """`advance()` as work completes; `note()` prints a line above the bar; `close()` clears it."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "entries",
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit, self.clock = label, total, unit, clock
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.done, self.started, self.drawn = 0, clock(), 0.0

    def line(self) -> str:
        return render(self.label, self.done, self.total, self.clock() - self.started, self.unit)

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.live and (now - self.drawn >= 0.1 or self.done == self.total):
            self.drawn = now
            self.out.write(f"\r\033[K{self.line()}")
            self.out.flush()

    def note(self, text: str) -> None:
        """A line of output that stays (stdout), with the bar redrawn beneath it."""
        if self.live:
            self.out.write("\r\033[K")
            self.out.flush()
        print(text, flush=True)
        if self.live:
            self.out.write(self.line())
            self.out.flush()

    def close(self) -> None:
        if self.live:
            self.out.write("\r\033[K")
            self.out.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
