"""The bench's flame graphs are titled with what they show, not py-spy's command line (which
names this machine's paths); CPU per command is each service's seconds over the count."""

from collections import namedtuple
from pathlib import Path

from services.bench.profile import Cpu, busy_share, retitle


def test_a_flame_graph_is_retitled(tmp_path: Path) -> None:
    svg = tmp_path / "fills-account.svg"
    svg.write_text(
        '<svg><text id="title" fill="rgb(0,0,0)" x="50%">/somewhere/py-spy record --pid 7'
        '</text><text id="details"> </text></svg>'
    )
    retitle(svg, "the account service, fills")
    text = svg.read_text()
    assert '<text id="title" fill="rgb(0,0,0)" x="50%">the account service, fills</text>' in text
    assert "/somewhere" not in text and '<text id="details"> </text>' in text


def test_cpu_per_command() -> None:
    cpu = Cpu({"account": 0.9, "integration": 0.3})
    assert cpu.per_command_ms(300) == {"account": 3.0, "integration": 1.0}
    assert "total 4.00" in cpu.line(300)


def test_the_machine_busy_share_counts_every_state_but_idle_and_iowait() -> None:
    times = namedtuple("times", "user nice system idle iowait irq softirq steal guest guest_nice")
    before = times(100.0, 0.0, 50.0, 800.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    # 6 s busy (user 3 of which guest 1, system 2, softirq 1), 3 s idle, 1 s iowait
    after = times(103.0, 0.0, 52.0, 803.0, 11.0, 0.0, 1.0, 0.0, 1.0, 0.0)
    assert busy_share(before, after) == 0.6
    assert busy_share(after, after) == 0.0


def test_a_paced_run_names_the_machine_busy_share() -> None:
    cpu = Cpu({"account": 0.5}, busy=0.914, cores=2)
    assert cpu.line(500).endswith("(total 1.00); machine 91% busy (2 cores)")
