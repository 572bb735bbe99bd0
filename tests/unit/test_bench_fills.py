"""The bench's fills: what an engine keeping to a revenue account's protocol sends (so the
fill path measured is the common one, with no protocol violation), dated on a trading day;
and a paced fill's latency split into its hops from the streams' stamps."""

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from services.account.domain import AccountType
from services.account.domain.marks import sizing_breach
from services.account.domain.model import AccountConfig
from services.account.domain.overrides import apply_overrides
from services.account.domain.trading import EXCHANGE_TZ, protocol_breaches
from services.bench import latency
from services.bench.load import PROTOCOL_KEPT, Command, Load, trading_time
from services.bench.tokens import Tokens
from shared.contracts.streams import Streams


def load(tmp_path: Path) -> Load:
    secret = tmp_path / "secret"
    secret.write_text("unused")
    env = {"ALLUSE_TOKEN_URL": "http://unused", "ALLUSE_CLIENT_ID": "engine"}
    tokens = Tokens({**env, "ALLUSE_CLIENT_SECRET_FILE": str(secret)})
    return Load(None, Streams(""), tokens, tokens, [], random.Random(1), {})  # type: ignore[arg-type]


def test_a_fill_keeps_a_bench_accounts_protocol(tmp_path: Path) -> None:
    bench = load(tmp_path)
    config = apply_overrides(AccountConfig.for_type(AccountType.REVENUE), PROTOCOL_KEPT)
    for _ in range(50):
        fill = json.loads(bench.fill("acc").fields["data"])
        filled_at = datetime.fromisoformat(fill["filled_at"])
        found = protocol_breaches(
            config,
            side=fill["side"],
            filled_at=filled_at,
            delta=Decimal(fill["delta"]),
            week_type=None,
        )
        assert found == []
        sized = sizing_breach(
            value=Decimal("50000.00"),
            sizing_pct=config.position_sizing_pct,
            strike=Decimal(fill["strike"]),
            contracts=fill["quantity"],
            multiplier=fill["multiplier"],
        )
        assert sized is None


def test_a_fill_is_dated_on_a_trading_day() -> None:
    saturday = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
    sunday = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    monday = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert trading_time(saturday) == datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert trading_time(sunday).astimezone(EXCHANGE_TZ).strftime("%A") == "Friday"
    assert trading_time(monday) == monday


def test_a_fill_s_latency_is_split_into_its_hops() -> None:
    wall = 1_000.0  # wall clock = monotonic + 1000 s
    sent = Command("fill", "acc", Decimal("1"), "s", {"id": "f1"}, sent_at=1.000)
    sent.done_at = 1.100
    applied = datetime.fromtimestamp(wall + 1.040, UTC).isoformat()
    hops = latency.hops_of(
        [sent, Command("fill", "acc", Decimal("1"), "s", {"id": "lost"}, sent_at=1.0)],
        {"f1": (wall + 1.060, applied)},
        {"f1": (wall + 1.090, "")},
        wall,
    )
    got = {name: [round(v, 1) for v in values] for name, values in hops.ms.items()}
    assert list(got.values()) == [[40.0], [20.0], [30.0], [10.0]]  # the fill never read: left out
    assert hops.summary()[latency.HOPS[0][0]] == {"p50_ms": 40.0, "p99_ms": 40.0}
