"""Section 3 of docs/rules.md: templates, risk profiles, strategies, validation, init."""

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.account.domain import (
    RISK_PROFILES,
    STRATEGIES,
    TEMPLATES,
    AccountConfig,
    AccountType,
    Allocation,
    RiskLevel,
    ValidationFailed,
    ValidationLimits,
    Weekday,
    apply_overrides,
    check_allocation,
    config_to_dict,
    plan_initialization,
    validate_config,
)
from services.account.domain.initialize import SystemPlan

GEN, REV, COM = AccountType.GENERATION, AccountType.REVENUE, AccountType.COMPOUNDING


def balances(plan: SystemPlan) -> tuple[D, ...]:
    return tuple(plan.account(t).initial_balance for t in (GEN, REV, COM))


def test_rule_3_moderate_250k_initialization_matches_example() -> None:
    plan = plan_initialization(D("250000"), "moderate")
    assert balances(plan) == (D("100000.00"), D("75000.00"), D("75000.00"))
    assert tuple(plan.account(t).cash_buffer for t in (GEN, REV, COM)) == (
        D("5000.00"),
        D("3750.00"),
        D("3750.00"),
    )
    assert plan.total_buffer == D("12500.00")
    assert plan.total_available == D("237500.00")


def test_rule_3_moderate_500k_initialization_matches_example() -> None:
    plan = plan_initialization(D("500000.00"), "moderate")
    assert balances(plan) == (D("200000.00"), D("150000.00"), D("150000.00"))


def test_rule_3_templates_match_the_table() -> None:
    expected = {
        "conservative": ((30, 50, 20), 7, RiskLevel.LOW, 12),
        "moderate": ((40, 30, 30), 5, RiskLevel.MEDIUM, 18),
        "aggressive": ((50, 20, 30), 3, RiskLevel.HIGH, 25),
    }
    for name, (alloc, buffer, risk, ret) in expected.items():
        t = TEMPLATES[name]
        shares = (t.allocation.generation, t.allocation.revenue, t.allocation.compounding)
        assert shares == tuple(map(D, alloc))
        assert (t.cash_buffer_pct, t.risk_level, t.expected_annual_return_pct) == (
            D(buffer),
            risk,
            D(ret),
        )


def test_rule_3_each_template_has_its_own_risk_profile() -> None:
    table: dict[str, tuple[object, ...]] = {
        "conservative": (5, 70, D("2.0"), 3, 10, 5),
        "moderate": (10, 90, D("1.5"), 5, 15, 10),
        "aggressive": (15, 95, D("1.0"), 7, 20, 15),
    }
    for name, row in table.items():
        p = plan_initialization(D("100000"), name).risk_profile
        assert p.name == name
        got = (
            p.max_drawdown_pct,
            p.position_sizing_pct,
            p.atr_adjustment,
            p.stop_loss_pct,
            p.take_profit_pct,
            p.max_positions,
        )
        assert got == row
    assert len({id(RISK_PROFILES[n]) for n in table}) == 3


def test_rule_3_aggressive_template_allocates_and_buffers_its_own_way() -> None:
    plan = plan_initialization(D("100000.00"), "aggressive")
    assert balances(plan) == (D("50000.00"), D("20000.00"), D("30000.00"))
    assert plan.total_buffer == D("3000.00") and plan.risk_level is RiskLevel.HIGH
    assert plan.account(GEN).config.cash_buffer_pct == 3


@pytest.mark.parametrize(
    ("strategy", "alloc"),
    [
        ("standard", (40, 30, 30)),
        ("growth_focused", (50, 25, 25)),
        ("income_focused", (25, 50, 25)),
        ("compound_focused", (30, 20, 50)),
    ],
)
def test_rule_3_allocation_strategies_split_capital(
    strategy: str, alloc: tuple[int, int, int]
) -> None:
    assert STRATEGIES[strategy].cash_buffer_pct == 5
    plan = plan_initialization(D("1000.00"), strategy=strategy)
    assert balances(plan) == tuple(D(a * 10) for a in alloc)
    assert plan.total_buffer == D("50.00")


def test_rule_3_custom_allocation_is_validated_and_used() -> None:
    plan = plan_initialization(
        D("1000.00"), "custom", custom_allocation=Allocation(D(60), D(20), D(20))
    )
    assert balances(plan) == (D("600.00"), D("200.00"), D("200.00"))
    with pytest.raises(ValidationFailed) as err:
        plan_initialization(D("1000.00"), "custom")
    assert [p.field for p in err.value.problems] == ["allocation"]


def test_rule_3_allocation_shares_must_sum_to_100_within_a_cent() -> None:
    assert check_allocation(Allocation(D("33.33"), D("33.33"), D("33.33"))) == []
    assert check_allocation(Allocation(D("33.33"), D("33.33"), D("33.32"))) != []
    problems = check_allocation(Allocation(D(50), D(30), D(30)))
    assert [p.field for p in problems] == ["allocation"]


def test_rule_3_rounding_remainder_cent_goes_to_com_acc() -> None:
    plan = plan_initialization(D("0.05"), strategy="standard")
    assert balances(plan) == (D("0.02"), D("0.02"), D("0.01"))  # 0.02 and 0.015 half-even
    plan = plan_initialization(D("100.01"), strategy="growth_focused")
    assert balances(plan) == (D("50.00"), D("25.00"), D("25.01"))


def test_rule_3_validation_reports_all_failures_with_field_names() -> None:
    bad = AccountConfig.for_type(
        GEN,
        allocation_pct=D(120),
        cash_buffer_pct=D(25),
        position_sizing_pct=D(101),
        delta_min=D(65),
        delta_max=D(15),
        target_weekly_return_pct=D("5.5"),
        entry_days=(Weekday.SATURDAY,),
        contracts_pct=D(70),
        leaps_pct=D(25),
        fork_threshold=D(0),
        merge_threshold=D(0),
    )
    with pytest.raises(ValidationFailed) as err:
        validate_config(bad)
    assert err.value.code == "invalid_configuration"
    fields = [p.field for p in err.value.problems]
    assert fields == [
        "allocation_pct",
        "cash_buffer_pct",
        "position_sizing_pct",
        "delta_min",  # out of 10-60
        "delta_max",  # out of 20-70
        "delta_min",  # not below delta_max
        "target_weekly_return_pct",
        "entry_days",
        "leaps_pct",
        "fork_threshold",
        "merge_threshold",
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allocation_pct": D("-1")}, "allocation_pct"),
        ({"cash_buffer_pct": D("20.01")}, "cash_buffer_pct"),
        ({"position_sizing_pct": D("-0.1")}, "position_sizing_pct"),
        ({"delta_min": D("9")}, "delta_min"),
        ({"delta_max": D("71")}, "delta_max"),
        ({"delta_min": D("45"), "delta_max": D("45")}, "delta_min"),
        ({"target_weekly_return_pct": D("0.09")}, "target_weekly_return_pct"),
        ({"entry_days": (Weekday.SUNDAY,)}, "entry_days"),
        ({"entry_days": ()}, "entry_days"),
        ({"leaps_pct": D("26")}, "leaps_pct"),
        ({"fork_threshold": D("-1")}, "fork_threshold"),
        ({"merge_threshold": D("50000")}, "merge_threshold"),
    ],
)
def test_rule_3_each_validation_check_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_config(AccountConfig.for_type(REV, **change))
    assert [p.field for p in err.value.problems] == [field]


def test_rule_3_validation_bounds_are_inclusive_and_configurable() -> None:
    edge = AccountConfig.for_type(
        REV,
        cash_buffer_pct=D(20),
        delta_min=D(10),
        delta_max=D(70),
        target_weekly_return_pct=D("5.0"),
    )
    assert validate_config(edge) is edge
    strict = ValidationLimits(cash_buffer=(D(0), D(10)))
    with pytest.raises(ValidationFailed):
        validate_config(edge, limits=strict)


def test_rule_3_default_type_configs_are_valid() -> None:
    for t in AccountType:
        validate_config(AccountConfig.for_type(t))


def test_rule_3_raw_overrides_report_parse_and_rule_failures_together() -> None:
    base = AccountConfig.for_type(GEN)
    with pytest.raises(ValidationFailed) as err:
        apply_overrides(
            base, {"delta_min": "abc", "color": "red", "cash_buffer_pct": 3.5, "delta_max": "80"}
        )
    assert sorted(p.field for p in err.value.problems) == [
        "cash_buffer_pct",
        "color",
        "delta_max",
        "delta_min",
    ]
    updated = apply_overrides(base, {"cash_buffer_pct": "7.5", "entry_days": ["Monday", "friday"]})
    assert updated.cash_buffer_pct == D("7.5")
    assert updated.entry_days == (Weekday.MONDAY, Weekday.FRIDAY)
    assert apply_overrides(base, config_to_dict(updated)) == updated


def test_rule_3_initialization_reports_all_problems_at_once() -> None:
    with pytest.raises(ValidationFailed) as err:
        plan_initialization(D("-1"), "bold", cash_buffer_pct=D(30))
    assert [p.field for p in err.value.problems] == ["total_capital", "template", "cash_buffer_pct"]
    with pytest.raises(ValidationFailed) as err:
        plan_initialization(D("100"), "moderate", "standard")
    assert [p.field for p in err.value.problems] == ["strategy"]
    with pytest.raises(ValidationFailed) as err:
        plan_initialization(D("100"), strategy="yolo")
    assert [p.field for p in err.value.problems] == ["strategy"]


def test_rule_3_no_template_nor_strategy_means_moderate() -> None:
    plan = plan_initialization(D("250000.00"))
    assert plan.template == "moderate" and plan.risk_profile.name == "moderate"


def test_rule_3_initial_accounts_carry_their_type_config_and_share() -> None:
    plan = plan_initialization(D("250000.00"), "conservative")
    gen = plan.account(GEN)
    assert gen.config.allocation_pct == 30 and gen.config.cash_buffer_pct == 7
    assert (gen.config.delta_min, gen.config.delta_max) == (D(40), D(50))
    assert plan.account(COM).config.position_sizing_pct == 85
    for a in plan.accounts:
        validate_config(a.config)


shares = st.integers(min_value=0, max_value=10000)


@given(
    capital=st.decimals(min_value=D("0.01"), max_value=D("1000000000"), places=2),
    a=shares,
    b=shares,
)
def test_rule_3_property_initialization_sums_exactly_to_capital(capital: D, a: int, b: int) -> None:
    gen, rev = D(min(a, b)) / 100, D(max(a, b) - min(a, b)) / 100
    alloc = Allocation(gen, rev, D(100) - gen - rev)
    assume(alloc.compounding >= 0)
    plan = plan_initialization(capital, "custom", custom_allocation=alloc)
    assert sum(balances(plan)) == capital
    assert all(b.as_tuple().exponent == -2 for b in balances(plan))
    assert plan.total_available == capital - plan.total_buffer
