"""The bench's peer ledger: its transfers conserve money and leave two entries each, with its
workers contending for the same rows (few accounts), and the fill-latency chart is drawn.
Correctness only: how fast it goes is the bench's to report, never a test's."""

from pathlib import Path

from services.bench import latency, peer


async def test_peer_transfers_conserve_money_under_contention(own_database: str) -> None:
    # 4 accounts, 8 workers: most transfers wait on another's row locks (taken in id order).
    result = await peer.run(own_database, count=400, workers=8, accounts=4)
    # run() checks the total and the entries itself and raises if either is off
    assert result.count == 400
    assert len(result.latencies_ms) == 400
    assert result.rejected == 0  # every account starts rich enough for every transfer


def test_latency_chart_is_drawn(tmp_path: Path) -> None:
    found = [latency.Latency(r, [1.0, 2.0, 30.0]) for r in latency.RATES]
    assert found[0].p50 == 2.0 and found[0].max == 30.0
    assert latency.chart(tmp_path / "latency.png", found).stat().st_size > 0
