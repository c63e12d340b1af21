"""The suite's time budget: whole rounds only, the first always."""

import pytest

from raftka.bench.suite import SuiteOptions, another_round_fits


@pytest.mark.parametrize(
    ("elapsed_s", "round_s", "budget_s", "fits"),
    [
        (0.0, [], 1.0, True),  # the first round runs whatever the budget
        (100.0, [100.0], 200.0, True),  # ends exactly at the budget
        (100.0, [100.0], 199.0, False),
        (250.0, [80.0, 90.0, 80.0], 420.0, True),  # 250 + 83.3 <= 420
        (345.0, [90.0, 80.0, 90.0, 85.0], 420.0, False),
    ],
)
def test_another_round_runs_only_if_a_mean_round_ends_within_the_budget(
    elapsed_s: float, round_s: list[float], budget_s: float, fits: bool
) -> None:
    assert another_round_fits(elapsed_s, round_s, budget_s) is fits


def test_options_refuse_empty_sizes() -> None:
    for bad in ({"rounds": 0}, {"slices": 0}, {"window_s": 0.0}, {"time_budget_s": 0.0}):
        with pytest.raises(ValueError):
            SuiteOptions(**bad)
