"""Where a burst's time goes, per service: the CPU each service process spent on it (from the
kernel's counters, always), and with `--profile DIR` a py-spy flame graph of each service
while the burst runs (DIR/<phase>-<service>.svg; py-spy needs ptrace of the services)."""

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from services.bench.report import progress

RATE_HZ = 250  # py-spy samples per second: enough for a few seconds' burst, little overhead
_TITLE = re.compile(r'(<text id="title"[^>]*>)[^<]*(</text>)')


def retitle(svg: Path, title: str) -> None:
    """py-spy titles a graph with its own command line (this machine's paths): say what it is."""
    if svg.exists():
        svg.write_text(_TITLE.sub(lambda m: f"{m[1]}{title}{m[2]}", svg.read_text(), count=1))


@dataclass
class Cpu:
    """CPU seconds (user + system) each service spent during a phase, and how busy the whole
    machine was meanwhile (every process: the servers and the load too)."""

    seconds: dict[str, float] = field(default_factory=dict)
    busy: float | None = None  # share of all the machine's cores busy over the phase
    cores: int = 0

    def per_command_ms(self, count: int) -> dict[str, float]:
        return {name: s * 1000 / count for name, s in self.seconds.items()}

    def line(self, count: int) -> str:
        each = self.per_command_ms(count)
        parts = "  ".join(f"{name} {ms:.2f}" for name, ms in each.items())
        line = f"    CPU ms per command: {parts}  (total {sum(each.values()):.2f})"
        if self.busy is None:
            return line
        return f"{line}; machine {self.busy:.0%} busy ({self.cores} cores)"


def busy_share(before: Any, after: Any) -> float:
    """The share of the machine's CPU time between two `psutil.cpu_times()` that was not idle."""
    spent = {name: getattr(after, name) - getattr(before, name) for name in after._fields}
    idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0)
    total = sum(spent.values()) - spent.get("guest", 0.0) - spent.get("guest_nice", 0.0)
    return 0.0 if total <= 0 else max(0.0, min(1.0, 1 - idle / total))


def _cpu(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    return 0.0


def _py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


@contextlib.contextmanager
def watched(pids: Mapping[str, int], phase: str, flames: Path | None) -> Iterator[Cpu]:
    """CPU of each service over the block; with `flames`, a flame graph of each too."""
    cpu = Cpu(cores=psutil.cpu_count() or 0)
    machine = psutil.cpu_times()
    before = {name: _cpu(pid) for name, pid in pids.items()}
    spies: list[tuple[subprocess.Popen[bytes], Path, str]] = []
    if flames is not None:
        tool = _py_spy()
        if tool is None:
            progress("py-spy not found (pip install -e '.[dev]'): no flame graphs")
        else:
            flames.mkdir(parents=True, exist_ok=True)
            for name, pid in pids.items():
                out = flames / f"{phase}-{name}.svg"
                argv = [
                    tool,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(RATE_HZ),
                    "--output",
                    str(out),
                    "--format",
                    "flamegraph",
                    "--nonblocking",
                ]
                spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                spies.append((spy, out, f"py-spy, {RATE_HZ} Hz: the {name} service, {phase}"))
    try:
        yield cpu
    finally:
        cpu.seconds = {name: _cpu(pid) - before[name] for name, pid in pids.items()}
        cpu.busy = busy_share(machine, psutil.cpu_times())
        for spy, _, _ in spies:  # py-spy writes its graph when interrupted
            spy.send_signal(signal.SIGINT)
        for spy, out, title in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
            retitle(out, title)
        if spies:
            progress(f"flame graphs of {phase} in {flames}")
