"""The bench's flame graphs are titled with what they show, not py-spy's command line (which
names this machine's paths); CPU per command is each service's seconds over the count."""

from pathlib import Path

from services.bench.profile import Cpu, retitle


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
