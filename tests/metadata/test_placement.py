"""Replica placement: Kafka's rack-unaware scheme and the balance it guarantees."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.metadata.placement import assign_replicas


@st.composite
def placements(draw: st.DrawFn) -> tuple[list[int], int, int, int]:
    broker_ids = sorted(draw(st.sets(st.integers(0, 1000), min_size=1, max_size=12)))
    partitions = draw(st.integers(1, 60))
    replication_factor = draw(st.integers(1, len(broker_ids)))
    start_index = draw(st.integers(0, 50))
    return broker_ids, partitions, replication_factor, start_index


@given(placements())
def test_every_partition_gets_rf_distinct_registered_replicas(
    case: tuple[list[int], int, int, int],
) -> None:
    broker_ids, partitions, rf, start = case
    assignment = assign_replicas(broker_ids, partitions, rf, start)
    assert len(assignment) == partitions
    for replicas in assignment:
        assert len(replicas) == rf
        assert len(set(replicas)) == rf
        assert set(replicas) <= set(broker_ids)


@given(placements())
def test_leader_counts_differ_by_at_most_one(case: tuple[list[int], int, int, int]) -> None:
    broker_ids, partitions, rf, start = case
    leaders = Counter(r[0] for r in assign_replicas(broker_ids, partitions, rf, start))
    counts = [leaders[b] for b in broker_ids]
    assert max(counts) - min(counts) <= 1


@given(placements())
def test_replica_counts_are_balanced_per_full_round(case: tuple[list[int], int, int, int]) -> None:
    broker_ids, partitions, rf, start = case
    n = len(broker_ids)
    held = Counter(b for r in assign_replicas(broker_ids, partitions, rf, start) for b in r)
    counts = [held[b] for b in broker_ids]
    if partitions % n == 0:
        assert set(counts) == {partitions * rf // n}
    else:
        assert max(counts) - min(counts) <= min(rf, n - rf)


def test_matches_kafkas_documented_assignment_for_five_brokers() -> None:
    # The table in Kafka's AdminUtils / ReplicaAssignment docs (start index 0).
    assignment = assign_replicas([0, 1, 2, 3, 4], 10, 3, 0)
    assert assignment[:5] == ((0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 0), (4, 0, 1))
    # The second round shifts the followers, so broker 0's partitions spread out.
    assert assignment[5:] == ((0, 2, 3), (1, 3, 4), (2, 4, 0), (3, 0, 1), (4, 1, 2))


def test_start_index_rotates_the_first_leader() -> None:
    assert assign_replicas([10, 20, 30], 3, 1, 1) == ((20,), (30,), (10,))


@pytest.mark.parametrize(
    ("broker_ids", "partitions", "rf", "start"),
    [
        ([1, 2], 1, 3, 0),
        ([1, 2], 1, 0, 0),
        ([1, 2], 0, 1, 0),
        ([1, 2], 1, 1, -1),
        ([1, 1], 1, 1, 0),
    ],
    ids=["rf_above_brokers", "rf_zero", "no_partitions", "negative_start", "repeated_broker"],
)
def test_impossible_placements_raise_value_error(
    broker_ids: list[int], partitions: int, rf: int, start: int
) -> None:
    with pytest.raises(ValueError):
        assign_replicas(broker_ids, partitions, rf, start)
