"""TEMPORARY stub: replaced by the assignors branch."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

TopicPartition = tuple[str, int]
ASSIGNORS: tuple[str, ...] = ("range", "roundrobin", "sticky")
DEFAULT_ASSIGNOR = "sticky"


def assign(
    assignor: str,
    subscriptions: Mapping[str, Sequence[str]],
    partition_counts: Mapping[str, int],
    previous: Mapping[str, Collection[TopicPartition]],
) -> dict[str, tuple[TopicPartition, ...]]:
    if assignor not in ASSIGNORS:
        raise ValueError(assignor)
    members = sorted(subscriptions)
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    topics = sorted({t for ts in subscriptions.values() for t in ts if t in partition_counts})
    i = 0
    for t in topics:
        subs = [m for m in members if t in subscriptions[m]]
        for p in range(partition_counts[t]):
            out[subs[i % len(subs)]].append((t, p))
            i += 1
    return {m: tuple(sorted(v)) for m, v in out.items()}
