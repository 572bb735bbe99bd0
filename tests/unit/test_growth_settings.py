"""Run-time growth settings: validated as a whole, every problem by field name."""

from decimal import Decimal

import pytest

from services.account.domain import ValidationFailed
from services.account.domain.settings import DEFAULT_SETTINGS, apply_settings, settings_to_dict


def test_settings_apply_and_round_trip() -> None:
    s = apply_settings(
        DEFAULT_SETTINGS,
        {"fork_split_pct": "60", "auto_fork": False, "reinvestment_months": [12, 6]},
    )
    assert (s.fork_split_pct, s.auto_fork, s.reinvestment_months) == (Decimal(60), False, (6, 12))
    assert apply_settings(DEFAULT_SETTINGS, settings_to_dict(s)) == s


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ValidationFailed) as exc:
        apply_settings(
            DEFAULT_SETTINGS,
            {
                "fork_split_pct": "100",
                "daily_fork_limit": 0,
                "auto_fork": "yes",
                "reinvestment_months": [1, 2],
                "colour": 1,
            },
        )
    fields = {p.field for p in exc.value.problems}
    assert fields == {
        "fork_split_pct",
        "daily_fork_limit",
        "auto_fork",
        "reinvestment_months",
        "colour",
    }
    assert exc.value.code == "invalid_configuration"


def test_rule_11_how_many_holders_a_quote_revalues_is_a_bounded_setting() -> None:
    assert DEFAULT_SETTINGS.quote_revalue_limit == 100
    assert apply_settings(DEFAULT_SETTINGS, {"quote_revalue_limit": 0}).quote_revalue_limit == 0
    with pytest.raises(ValidationFailed) as exc:
        apply_settings(DEFAULT_SETTINGS, {"quote_revalue_limit": 10001})
    assert [p.field for p in exc.value.problems] == ["quote_revalue_limit"]
