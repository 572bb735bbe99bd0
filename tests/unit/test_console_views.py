"""What the console's pages show, from query answers and lifecycle events."""

from decimal import Decimal

from services.console import views
from services.console.operations import per_stream


def acc(
    pid: str, type_: str, balance: str, status: str = "active", **extra: object
) -> dict[str, object]:
    return {
        "id": f"{pid}-{type_}",
        "portfolio_id": pid,
        "type": type_,
        "status": status,
        "name": "",
        "balance": balance,
        "available": balance,
        "cash_buffer": "1.00",
        **extra,
    }


def test_portfolios_group_their_accounts_with_totals_largest_first() -> None:
    rows = [
        acc("p1", "compounding", "30.00"),
        acc("p2", "generation", "500.00"),
        acc("p1", "generation", "40.00"),
        acc("p1", "revenue", "30.00", "suspended"),
    ]
    out = views.portfolios(rows)
    assert [p["id"] for p in out] == ["p2", "p1"]
    p1 = out[1]
    assert [a["type"] for a in p1["accounts"]] == ["generation", "revenue", "compounding"]
    assert p1["cash"] == Decimal("100.00") and p1["buffer"] == Decimal("3.00")
    assert p1["status"] == "mixed" and out[0]["status"] == "active"
    assert views.matches(p1, "p1", "suspended") and not views.matches(out[0], "", "suspended")


def test_value_is_cash_plus_marked_positions_when_there_are_any() -> None:
    assert views.value_of(acc("p", "generation", "100.00")) == Decimal("100.00")
    assert views.value_of(acc("p", "generation", "100.00", value="130.50")) == Decimal("130.50")
    held = acc(
        "p", "generation", "100.00", positions=[{"market_value": "-20.00"}, {"market_value": "5"}]
    )
    assert views.value_of(held) == Decimal("85.00")


def test_a_tree_nests_children_under_their_parents() -> None:
    answer = {
        "portfolios": [
            {"portfolio_id": "root", "parent_id": None},
            {"portfolio_id": "a", "parent_id": "root"},
            {"portfolio_id": "b", "parent_id": "root"},
            {"portfolio_id": "a1", "parent_id": "a"},
        ]
    }
    (root,) = views.tree(answer)
    assert [c["portfolio_id"] for c in root["children"]] == ["a", "b"]
    assert root["children"][0]["children"][0]["portfolio_id"] == "a1"
    # a subtree's own root has a parent outside the answer: it is still a root here
    (sub,) = views.tree({"portfolios": [{"portfolio_id": "a", "parent_id": "root"}]})
    assert sub["portfolio_id"] == "a"


def test_the_growth_chart_stacks_generations_inside_its_box() -> None:
    points = [
        {"at": "2026-01-04T00:00:00+00:00", "total": "100", "generations": {"0": "100"}},
        {
            "at": "2026-01-11T00:00:00+00:00",
            "total": "300",
            "generations": {"0": "200", "1": "100"},
        },
    ]
    chart = views.chart(points, width=400, height=200)
    assert [a["generation"] for a in chart["areas"]] == [0, 1]
    coords = [
        tuple(map(float, xy.split(","))) for a in chart["areas"] for xy in a["points"].split()
    ]
    assert all(0 <= x <= 400 and 0 <= y <= 200 for x, y in coords)
    assert chart["dots"][-1]["total"] == "300.00" and chart["ticks"][-1]["label"] == "300"
    assert views.chart([])["areas"] == []


def test_live_rows_say_what_happened_in_a_line() -> None:
    moved = views.event_row(
        "1-0",
        {
            "type": "alluse.account.balance_changed",
            "time": "2026-11-28T10:00:00+00:00",
            "subject": "acc",
            "data": {
                "account_id": "acc",
                "balance": "101000.00",
                "available": "95950.00",
                "cash_buffer": "5050.00",
                "transaction": {"type": "deposit", "amount": "1000.00"},
            },
        },
    )
    assert moved["summary"] == "deposit 1,000.00, balance 101,000.00"
    assert moved["account"] == "acc" and moved["time"] == "2026-11-28 10:00:00"
    refused = views.event_row(
        "2-0",
        {
            "type": "alluse.command.rejected",
            "data": {"code": "withdrawal_forbidden", "reason": "a Com-Acc never pays out"},
        },
    )
    assert refused["summary"] == "rejected withdrawal_forbidden: a Com-Acc never pays out"
    assert views.usd("not a number") == "not a number"


def test_operations_reads_each_streams_figures_from_prometheus_text() -> None:
    text = (
        "# TYPE alluse_stream_lag gauge\n"
        'alluse_stream_lag{stream="p.alluse.account.commands"} 3.0\n'
        "# TYPE alluse_dlq_entries gauge\n"
        'alluse_dlq_entries{stream="p.alluse.account.commands"} 2.0\n'
        "# TYPE alluse_ready gauge\n"
        'alluse_ready{service="account"} 1.0\n'
    )
    columns, rows = per_stream(text, "p.")
    assert columns == ["lag", "in DLQ"]
    assert rows == {"alluse.account.commands": {"lag": 3.0, "in DLQ": 2.0}}
    assert per_stream("not {{ prometheus", "") == ([], {})


def test_a_growth_chart_of_one_week_is_a_band_across_the_box() -> None:
    chart = views.chart(
        [
            {
                "at": "2026-11-30T00:00:00+00:00",
                "total": "250000.00",
                "generations": {"0": "250000.00"},
            }
        ],
        width=400,
        height=200,
    )
    xs = {float(xy.split(",")[0]) for xy in chart["areas"][0]["points"].split()}
    assert min(xs) < 100 and max(xs) > 300
