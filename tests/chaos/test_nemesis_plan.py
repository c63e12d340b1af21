"""The fault planner's promises, for any seed: the same schedule for the same seed, every
asked kind at least once however short the run, one fault at a time with a settle gap,
the end within its bound, and targets that leave a majority connected."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.api.launcher import make_cluster
from raftka.chaos.nemesis import (
    ACTIVE_MAX_MS,
    ACTIVE_MIN_MS,
    SETTLE_MAX_MS,
    SETTLE_MIN_MS,
    VARIANTS,
    FaultKind,
    FaultStep,
    Nemesis,
    partition_cuts,
    plan_faults,
    schedule_bound_ms,
    usable_kinds,
)
from raftka.chaos.netns import NetworkUnavailable

seeds = st.integers(min_value=0, max_value=2**64)
durations = st.floats(min_value=0, max_value=600, allow_nan=False)
kind_lists = st.lists(st.sampled_from([str(k) for k in FaultKind]), min_size=1, unique=True)
broker_sets = st.lists(st.integers(1, 9), min_size=3, max_size=7, unique=True)


@given(seeds, durations, kind_lists, broker_sets)
def test_the_same_seed_gives_the_same_schedule(
    seed: int, duration: float, kinds: list[str], brokers: list[int]
) -> None:
    assert plan_faults(seed, duration, kinds, brokers) == plan_faults(
        seed, duration, kinds, brokers
    )


@given(seeds, durations, kind_lists, broker_sets)
def test_every_asked_kind_runs_at_least_once_however_short(
    seed: int, duration: float, kinds: list[str], brokers: list[int]
) -> None:
    schedule = plan_faults(seed, duration, kinds, brokers)
    assert {str(s.kind) for s in schedule} == set(kinds)


@given(seeds, durations, kind_lists, broker_sets)
def test_faults_never_overlap_and_each_is_followed_by_a_settle_gap(
    seed: int, duration: float, kinds: list[str], brokers: list[int]
) -> None:
    schedule = plan_faults(seed, duration, kinds, brokers)
    assert [s.index for s in schedule] == list(range(len(schedule)))
    for step in schedule:
        assert ACTIVE_MIN_MS <= step.active_ms <= ACTIVE_MAX_MS
        assert SETTLE_MIN_MS <= step.settle_ms <= SETTLE_MAX_MS
    for before, after in zip(schedule, schedule[1:], strict=False):
        assert after.start_ms >= before.end_ms


@given(seeds, durations, kind_lists, broker_sets)
def test_a_schedule_ends_within_the_duration_or_the_minimal_round(
    seed: int, duration: float, kinds: list[str], brokers: list[int]
) -> None:
    schedule = plan_faults(seed, duration, kinds, brokers)
    assert schedule[-1].end_ms <= schedule_bound_ms(duration, len(kinds))


@given(seeds, st.floats(min_value=0, max_value=600), kind_lists, broker_sets)
def test_targets_are_brokers_and_partitions_leave_a_majority(
    seed: int, duration: float, kinds: list[str], brokers: list[int]
) -> None:
    for step in plan_faults(seed, duration, kinds, brokers):
        assert step.variant in VARIANTS[step.kind]
        assert set(step.targets) <= set(brokers)
        if step.kind is FaultKind.PARTITION and step.groups:
            assert sorted(b for g in step.groups for b in g) == sorted(brokers)
            sides = _connected_sides(step)
            assert max(len(s) for s in sides) > len(brokers) / 2
        if step.kind is FaultKind.LATENCY:
            assert step.latency is not None and len(step.targets) == 1


def _connected_sides(step: FaultStep) -> list[set[int]]:
    if step.variant == "bridge":
        left, shared, right = step.groups
        return [set(left) | set(shared), set(shared) | set(right)]
    return [set(g) for g in step.groups]


def test_a_long_run_cycles_through_every_variant() -> None:
    schedule = plan_faults(1, 3600, [str(k) for k in FaultKind], [1, 2, 3])
    for kind, variants in VARIANTS.items():
        assert {s.variant for s in schedule if s.kind is kind} == set(variants)


def test_different_seeds_give_different_schedules() -> None:
    kinds = [str(k) for k in FaultKind]
    assert plan_faults(1, 120, kinds, [1, 2, 3]) != plan_faults(2, 120, kinds, [1, 2, 3])


def test_a_bridge_partition_cuts_only_between_the_halves() -> None:
    assert partition_cuts("bridge", [(1, 2), (3,), (4, 5)]) == [(1, 4), (1, 5), (2, 4), (2, 5)]
    assert partition_cuts("isolate_one", [(2,), (1, 3)]) == [(1, 2), (2, 3)]


@pytest.mark.parametrize(
    ("kinds", "brokers", "message"),
    [
        (["flood"], [1, 2, 3], "unknown fault kind"),
        (["partition"], [1, 2], "at least 3 brokers"),
        (["kill"], [], "at least one broker"),
    ],
)
def test_impossible_plans_are_refused(kinds: list[str], brokers: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_faults(0, 60, kinds, brokers)


def test_unavailable_kinds_are_dropped_with_a_reason_to_print() -> None:
    kinds, warnings = usable_kinds(
        ["kill", "partition", "latency"], {FaultKind.LATENCY: "no netem here"}
    )
    assert kinds == [FaultKind.KILL, FaultKind.PARTITION]
    assert warnings == ["latency faults are off: no netem here"]


def test_a_nemesis_without_a_network_says_why_and_refuses_network_faults(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, 3)  # never started: nothing to reach
    nemesis = Nemesis(
        cluster, record=lambda op: None, clock=lambda: 0.0, network_unavailable="not root"
    )
    assert nemesis.unavailable == {FaultKind.PARTITION: "not root", FaultKind.LATENCY: "not root"}
    schedule, warnings = nemesis.plan(0, 60, ["kill", "partition", "latency"])
    assert {s.kind for s in schedule} == {FaultKind.KILL}
    assert warnings == ["partition faults are off: not root", "latency faults are off: not root"]
    step = plan_faults(0, 0, ["partition"], [1, 2, 3])[0]
    with pytest.raises(NetworkUnavailable, match="not root"):
        nemesis.apply(step)
