"""The tree reply stays within one stream entry, and the CLI draws what it gets."""

from services.account.domain.analytics import thin
from services.account.reads.analytics import MAX_POINTS
from services.cli.charts import svg, text_tree


def point(i: int) -> dict[str, object]:
    return {
        "at": f"2026-01-{i % 28 + 1:02d}T00:00:00+00:00",
        "total": f"{i}.00",
        "generations": {"0": f"{i}.00"},
    }


def test_rule_7_growth_series_is_thinned_but_keeps_its_ends() -> None:
    points = [point(i) for i in range(520)]  # ten years of weeks
    thinned = thin(points, MAX_POINTS)
    assert len(thinned) == MAX_POINTS
    assert thinned[0] == points[0] and thinned[-1] == points[-1]
    assert thin(points[:10], MAX_POINTS) == points[:10]


def test_text_tree_nests_children_and_says_when_it_shows_part() -> None:
    data = {
        "portfolio_id": "root",
        "forks": 1,
        "merges": 0,
        "total_value": "300000.00",
        "total_cash": "301000.00",
        "portfolios_shown": 2,
        "portfolios_total": 5,
        "portfolios": [
            {
                "portfolio_id": "root-0000",
                "parent_id": None,
                "generation": 0,
                "value": "250000.00",
                "merged_at": None,
                "merged_total": None,
                "forked_at": None,
            },
            {
                "portfolio_id": "child-000",
                "parent_id": "root-0000",
                "generation": 1,
                "value": "50000.00",
                "merged_at": None,
                "merged_total": None,
                "forked_at": "2026-03-05T00:00:00+00:00",
            },
        ],
    }
    lines = text_tree(data).splitlines()
    assert lines[0] == "tree root: 1 forks, 0 merges, value 300,000.00, cash 301,000.00"
    assert lines[1].startswith("└─ gen 0 root-000 250,000.00")
    assert lines[2].startswith("   └─ gen 1 child-00 50,000.00 forked 2026-03-05")
    assert lines[-1] == "(showing the first 2 of 5 portfolios)"


def test_growth_chart_is_an_svg_document() -> None:
    chart = svg([point(i) for i in range(30)])
    assert chart.startswith("<svg") and chart.rstrip().endswith("</svg>")
