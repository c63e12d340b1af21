"""Replica placement for new topics: Kafka's rack-unaware assignment.

This module owns the choice of which brokers hold each partition of a new topic.
It must never look at the metadata state or pick randomly: the controller passes
the unfenced broker ids (sorted) and a start index, so placement is reproducible.

Guarantees (Kafka's scheme; tests/metadata/test_placement.py checks them):
- every partition gets `replication_factor` distinct replicas;
- leaders (first replicas) go round-robin, so brokers' leader counts differ by at
  most one;
- every full round of len(broker_ids) partitions gives each broker exactly
  `replication_factor` replicas: replica counts are equal when the partition count
  is a multiple of the broker count, and otherwise differ by at most
  min(replication_factor, len(broker_ids) - replication_factor) (the last, partial
  round is a run of consecutive brokers per replica slot).
"""

from __future__ import annotations

from collections.abc import Sequence


def _follower_index(first: int, shift: int, follower: int, brokers: int) -> int:
    # Offsets 1..brokers-1 from the leader, distinct per follower: never the leader,
    # never the same broker twice. The shift changes every round so followers of
    # a broker's partitions are spread across brokers rather than always its neighbour.
    offset = 1 + (shift + follower) % (brokers - 1)
    return (first + offset) % brokers


def assign_replicas(
    broker_ids: Sequence[int], partitions: int, replication_factor: int, start_index: int
) -> tuple[tuple[int, ...], ...]:
    """One replica list per partition; the first replica is the preferred leader.

    Raises ValueError when replication_factor is not in 1..len(broker_ids), when
    partitions < 1, start_index < 0 or broker_ids repeats an id.
    """
    brokers = len(broker_ids)
    if not 1 <= replication_factor <= brokers:
        raise ValueError(
            f"replication factor {replication_factor} needs 1-{brokers} available brokers"
        )
    if partitions < 1:
        raise ValueError(f"a topic needs at least one partition, got {partitions}")
    if start_index < 0:
        raise ValueError(f"start_index must be >= 0, got {start_index}")
    if len(set(broker_ids)) != brokers:
        raise ValueError(f"broker ids repeat: {list(broker_ids)}")
    shift = start_index  # Kafka seeds the follower shift with the same fixed value
    assignment = []
    for partition in range(partitions):
        if partition > 0 and partition % brokers == 0:
            shift += 1
        first = (partition + start_index) % brokers
        replicas = [broker_ids[first]]
        for follower in range(replication_factor - 1):
            replicas.append(broker_ids[_follower_index(first, shift, follower, brokers)])
        assignment.append(tuple(replicas))
    return tuple(assignment)
