"""The soak chart draws one line per logical stream: a partitioned stream's 16 partitions are
summed into one line (its legend was 32 partition names over the plot)."""

from pathlib import Path

from services.bench import samples
from services.bench.samples import Sample
from services.bench.soak_report import chart, chart_lines


def sample(at: float, streams: dict[str, int]) -> Sample:
    rows = {"inbox": 0, "outbox": 0, "ledger": 0}
    return Sample(at=at, used_memory=1, streams=streams, lag=0, pending=0, rows=rows)


def test_partitions_of_one_stream_are_summed_into_one_line(tmp_path: Path) -> None:
    taken = [
        sample(
            0,
            {
                "alluse.audit": 5,
                "t.{t.alluse.account.commands}.p0": 1,
                "t.{t.alluse.account.commands}.p1": 2,
            },
        ),
        sample(
            10,
            {
                "alluse.audit": 7,
                "t.{t.alluse.account.commands}.p1": 4,
                "t.{t.alluse.internal.account.effects}.p3": 9,
            },
        ),
    ]
    assert chart_lines(taken) == {
        "alluse.audit": [5, 7],
        "t.alluse.account.commands (partitions)": [3, 4],
        "t.alluse.internal.account.effects (partitions)": [0, 9],
    }
    assert chart(taken, tmp_path / "soak.png").stat().st_size > 0


def test_each_querys_own_reply_stream_counts_in_its_lanes_row() -> None:
    assert samples._row("t.alluse.reply.load-operator.0a1b") == "t.alluse.reply.load-operator.*"
    assert samples._row("alluse.reply.engine-a.q.1") == "alluse.reply.engine-a.*"
    assert samples._row("alluse.account.lifecycle") == "alluse.account.lifecycle"
