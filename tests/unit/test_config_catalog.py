"""docs/rules.md section 3 templates and allocation strategies as run-time settings: validated, all
or nothing."""

from decimal import Decimal
from typing import Any

import pytest

from services.account.domain import (
    BUILT_IN,
    STRATEGIES,
    TEMPLATES,
    AccountType,
    ValidationFailed,
    plan_initialization,
)
from services.account.domain.settings import DEFAULT_SETTINGS, apply_settings, settings_to_dict

D = Decimal


def balanced(**over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "allocation": {"generation": "35", "revenue": "35", "compounding": "30"},
        "cash_buffer_pct": "6",
        "risk_level": "medium",
        "expected_return_pct": "15",
        "risk_profile": "moderate",
    }
    return {**entry, **over}


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as exc:
        apply_settings(DEFAULT_SETTINGS, raw)
    assert exc.value.code == "invalid_configuration"
    return {p.field: p.message for p in exc.value.problems}


def test_catalog_defaults_are_exactly_the_section_3_constants() -> None:
    assert DEFAULT_SETTINGS.templates == TEMPLATES and DEFAULT_SETTINGS.strategies == STRATEGIES
    assert DEFAULT_SETTINGS.catalog == BUILT_IN
    stored = settings_to_dict(DEFAULT_SETTINGS)
    assert stored["templates"]["aggressive"] == {
        "allocation": {"generation": "50", "revenue": "20", "compounding": "30"},
        "cash_buffer_pct": "3",
        "risk_level": "high",
        "expected_return_pct": "25",
        "risk_profile": "aggressive",
    }
    assert stored["strategies"]["income_focused"] == {
        "allocation": {"generation": "25", "revenue": "50", "compounding": "25"},
        "cash_buffer_pct": "5",
    }


def test_a_custom_template_initializes_with_its_allocation_and_buffer() -> None:
    s = apply_settings(DEFAULT_SETTINGS, {"templates": {"balanced": balanced()}})
    plan = plan_initialization(D("250000.00"), "balanced", catalog=s.catalog)
    gen, rev, com = (plan.account(t) for t in AccountType)
    assert (gen.initial_balance, rev.initial_balance, com.initial_balance) == (
        D("87500.00"),
        D("87500.00"),
        D("75000.00"),
    )
    assert (gen.cash_buffer, rev.cash_buffer, com.cash_buffer) == (
        D("5250.00"),
        D("5250.00"),
        D("4500.00"),
    )
    assert plan.total_available == D("235000.00") and plan.risk_profile.name == "moderate"
    assert plan.expected_annual_return_pct == 15 and plan.cash_buffer_pct == 6
    with pytest.raises(ValidationFailed):  # the built-in catalog does not know it
        plan_initialization(D("250000.00"), "balanced")


def test_a_custom_strategy_initializes_with_its_allocation_and_buffer() -> None:
    strategy = {
        "allocation": {"generation": "20", "revenue": "20", "compounding": "60"},
        "cash_buffer_pct": "10",
    }
    s = apply_settings(DEFAULT_SETTINGS, {"strategies": {"compound_heavy": strategy}})
    plan = plan_initialization(D("100000.00"), strategy="compound_heavy", catalog=s.catalog)
    assert [a.initial_balance for a in plan.accounts] == [D(20000), D(20000), D(60000)]
    assert plan.total_buffer == D("10000.00")


def test_catalog_shares_must_sum_to_100_within_0_01() -> None:
    near = balanced(allocation={"generation": "35", "revenue": "34.995", "compounding": "30"})
    assert "near" in apply_settings(DEFAULT_SETTINGS, {"templates": {"near": near}}).templates
    off = balanced(allocation={"generation": "35", "revenue": "34", "compounding": "30"})
    assert problems({"templates": {"off": off}}) == {
        "templates.off.allocation": "shares must sum to 100, got 99"
    }


def test_catalog_shares_are_0_to_100_and_buffer_0_to_20() -> None:
    bad = balanced(
        allocation={"generation": "130", "revenue": "-30", "compounding": "0"},
        cash_buffer_pct="20.5",
    )
    assert set(problems({"templates": {"bad": bad}})) == {
        "templates.bad.allocation.generation",
        "templates.bad.allocation.revenue",
        "templates.bad.cash_buffer_pct",
    }


def test_catalog_risk_profile_is_one_of_the_three() -> None:
    found = problems({"templates": {"wild": balanced(risk_profile="reckless")}})
    assert found == {
        "templates.wild.risk_profile": "one of ['conservative', 'moderate', 'aggressive']"
    }


def test_catalog_names_are_1_to_40_of_a_z_0_9_and_underscore() -> None:
    ok = "a" * 40
    assert ok in apply_settings(DEFAULT_SETTINGS, {"templates": {ok: balanced()}}).templates
    found = problems(
        {
            "templates": {
                "Balanced": balanced(),
                "a" * 41: balanced(),
                "": balanced(),
                "custom": balanced(),
            }
        }
    )
    assert set(found) == {
        "templates.Balanced",
        f"templates.{'a' * 41}",
        "templates.",
        "templates.custom",
    }


def test_catalog_update_reports_every_problem_at_once_with_its_field_path() -> None:
    found = problems(
        {
            "fork_split_pct": "0",
            "templates": {
                "t1": {"allocation": {"generation": "x"}, "colour": "red", "risk_level": "mid"}
            },
            "strategies": {
                "s1": {"allocation": {"generation": "50", "revenue": "50", "compounding": "1"}},
                "s2": 5,
            },
        }
    )
    assert set(found) == {
        "fork_split_pct",
        "templates.t1.colour",
        "templates.t1.cash_buffer_pct",
        "templates.t1.risk_profile",
        "templates.t1.risk_level",
        "templates.t1.allocation.generation",
        "templates.t1.allocation.revenue",
        "templates.t1.allocation.compounding",
        "strategies.s1.allocation",
        "strategies.s1.cash_buffer_pct",
        "strategies.s2",
    }


def test_built_ins_can_be_replaced_not_removed_and_custom_entries_can_be_removed() -> None:
    safer = balanced(allocation={"generation": "30", "revenue": "40", "compounding": "30"})
    s = apply_settings(DEFAULT_SETTINGS, {"templates": {"moderate": safer, "balanced": balanced()}})
    assert s.templates["moderate"].allocation.revenue == 40 and "balanced" in s.templates
    assert problems({"templates": {"moderate": None}, "strategies": {"standard": None}}) == {
        "templates.moderate": "a built-in entry can be replaced, not removed",
        "strategies.standard": "a built-in entry can be replaced, not removed",
    }
    gone = apply_settings(s, {"templates": {"balanced": None}})
    assert (
        "balanced" not in gone.templates and gone.templates["moderate"] == s.templates["moderate"]
    )


def test_catalog_round_trips_through_its_stored_form() -> None:
    s = apply_settings(
        DEFAULT_SETTINGS, {"templates": {"balanced": balanced(expected_return_pct=None)}}
    )
    assert apply_settings(DEFAULT_SETTINGS, settings_to_dict(s)) == s
    assert settings_to_dict(s)["templates"]["balanced"]["expected_return_pct"] is None
