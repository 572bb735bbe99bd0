"""The pure parts of soak and chaos: the plateau rule and the seeded fault schedule."""

import random

from services.bench.chaos import schedule
from services.bench.samples import plateaued


def test_a_series_that_levels_off_has_plateaued() -> None:
    rising_then_flat = [0.0, 400, 800, 1000, 1010, 990, 1005, 1000, 995, 1008]
    assert plateaued(rising_then_flat, slack=20)


def test_slow_steady_growth_has_not_plateaued() -> None:
    assert not plateaued([1000 + 30 * i for i in range(40)], slack=20)


def test_too_few_samples_are_no_plateau() -> None:
    assert not plateaued([5], slack=0)


def test_the_same_seed_draws_the_same_faults_at_the_same_moments() -> None:
    assert schedule(random.Random(7), 20_000, 2) == schedule(random.Random(7), 20_000, 2)
    assert schedule(random.Random(7), 20_000, 2) != schedule(random.Random(8), 20_000, 2)


def test_each_service_is_killed_twice_and_each_server_faulted_once() -> None:
    plan = schedule(random.Random(3), 20_000, 2)
    faults = sorted(plan.values())
    assert faults == sorted(
        [f"kill -9 {s}" for s in ("security", "account", "integration") for _ in range(2)]
        + ["kill -9 redis", "restart postgres", "second account replica"]
    )
    moments = {fault: at for at, fault in plan.items()}
    assert all(1_000 <= at <= 18_000 for at in plan)
    assert 10_000 <= moments["second account replica"] <= 10_010
