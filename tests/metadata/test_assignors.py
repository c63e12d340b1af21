"""Consumer group assignors: the properties every assignment keeps, and readable examples."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.metadata.assignors import ASSIGNORS, DEFAULT_ASSIGNOR, TopicPartition, assign

Subscriptions = dict[str, list[str]]
Counts = dict[str, int]
Previous = dict[str, list[TopicPartition]]
Assignment = dict[str, tuple[TopicPartition, ...]]

# Ids that sort differently as strings than they were drawn, plus ids that are gone.
MEMBER_IDS = ["a", "b", "c-1", "c-10", "c-2", "consumer-7f3a", "m", "z", "Z", "\u00e9"]
GONE_MEMBER_IDS = ["left-1", "left-2"]
TOPICS = ["orders", "payments", "t", "t2"]
MISSING_TOPIC = "deleted"  # subscribed to, but absent from partition_counts

member_ids = st.lists(st.sampled_from(MEMBER_IDS), unique=True, min_size=1, max_size=8)
partition_counts = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 13), max_size=4)
topic_lists = st.lists(st.sampled_from([*TOPICS, MISSING_TOPIC]), unique=True, max_size=5)
# Partitions that may be out of range or in topics that do not exist.
any_partition = st.tuples(st.sampled_from([*TOPICS, MISSING_TOPIC]), st.integers(-1, 15))


@st.composite
def uniform_groups(draw: st.DrawFn) -> tuple[Subscriptions, Counts]:
    """Every member subscribes to the same topics."""
    topics = draw(topic_lists)
    return {m: list(topics) for m in draw(member_ids)}, draw(partition_counts)


@st.composite
def mixed_groups(draw: st.DrawFn) -> tuple[Subscriptions, Counts]:
    return {m: draw(topic_lists) for m in draw(member_ids)}, draw(partition_counts)


def garbage_previous(members: Collection[str]) -> st.SearchStrategy[Previous]:
    """Anything: gone members, gone partitions, one partition claimed several times."""
    owners = st.sampled_from([*sorted(members), *GONE_MEMBER_IDS])
    return st.dictionaries(owners, st.lists(any_partition, max_size=8), max_size=6)


def clean_previous(members: Collection[str]) -> st.SearchStrategy[Previous]:
    """Each partition claimed at most once (the owners may be gone, the partitions too)."""
    owners = st.sampled_from([*sorted(members), *GONE_MEMBER_IDS])
    return st.dictionaries(any_partition, owners, max_size=30).map(_by_owner)


def _by_owner(owner_of: Mapping[TopicPartition, str]) -> Previous:
    previous: Previous = {}
    for partition, owner in owner_of.items():
        previous.setdefault(owner, []).append(partition)
    return previous


def subscribed_partitions(subscriptions: Subscriptions, counts: Counts) -> set[TopicPartition]:
    topics = {t for topics in subscriptions.values() for t in topics}
    return {(t, p) for t in topics for p in range(counts.get(t, 0))}


def still_valid(
    subscriptions: Subscriptions, counts: Counts, previous: Previous
) -> dict[str, set[TopicPartition]]:
    """Member -> its previous partitions that exist in a topic it still subscribes to."""
    return {
        m: {(t, p) for t, p in previous.get(m, ()) if t in topics and 0 <= p < counts.get(t, 0)}
        for m, topics in subscriptions.items()
    }


def owner_of(assignment: Assignment) -> dict[TopicPartition, str]:
    return {tp: m for m, tps in assignment.items() for tp in tps}


def partition_totals(assignment: Assignment) -> list[int]:
    return [len(tps) for tps in assignment.values()]


# --- complete and disjoint ----------------------------------------------------------


@pytest.mark.parametrize("assignor", ASSIGNORS)
@given(group=mixed_groups(), data=st.data())
def test_every_subscribed_partition_goes_to_exactly_one_member_subscribed_to_its_topic(
    assignor: str, group: tuple[Subscriptions, Counts], data: st.DataObject
) -> None:
    subscriptions, counts = group
    previous = data.draw(garbage_previous(subscriptions))
    result = assign(assignor, subscriptions, counts, previous)
    everything = [tp for tps in result.values() for tp in tps]
    assert len(everything) == len(set(everything)), "a partition went to two members"
    assert set(everything) == subscribed_partitions(subscriptions, counts)
    for member, tps in result.items():
        assert {t for t, _ in tps} <= set(subscriptions[member])


@pytest.mark.parametrize("assignor", ASSIGNORS)
@given(group=mixed_groups())
def test_every_member_is_a_key_and_its_partitions_are_sorted(
    assignor: str, group: tuple[Subscriptions, Counts]
) -> None:
    subscriptions, counts = group
    result = assign(assignor, subscriptions, counts, {})
    assert set(result) == set(subscriptions)
    for tps in result.values():
        assert isinstance(tps, tuple)
        assert list(tps) == sorted(tps)


# --- balanced ------------------------------------------------------------------------


@pytest.mark.parametrize("assignor", ASSIGNORS)
@given(group=uniform_groups(), data=st.data())
def test_counts_differ_by_at_most_one_when_all_members_subscribe_to_the_same_topics(
    assignor: str, group: tuple[Subscriptions, Counts], data: st.DataObject
) -> None:
    subscriptions, counts = group
    previous = data.draw(garbage_previous(subscriptions))
    totals = partition_totals(assign(assignor, subscriptions, counts, previous))
    assert max(totals) - min(totals) <= 1, totals


@given(group=uniform_groups())
def test_range_gives_each_member_one_contiguous_run_per_topic_in_member_order(
    group: tuple[Subscriptions, Counts],
) -> None:
    subscriptions, counts = group
    result = assign("range", subscriptions, counts, {})
    for topic in {t for topics in subscriptions.values() for t in topics}:
        cursor = 0
        for member in sorted(result):
            run = [p for t, p in result[member] if t == topic]
            assert run == list(range(cursor, cursor + len(run)))
            cursor += len(run)


# --- deterministic -------------------------------------------------------------------


def _shuffled(
    rng: random.Random, subscriptions: Subscriptions, counts: Counts, previous: Previous
) -> tuple[Subscriptions, Counts, dict[str, Collection[TopicPartition]]]:
    """The same contents in another order, with previous as lists, tuples or sets."""

    def order(items: Sequence[str]) -> list[str]:
        return rng.sample(list(items), len(items))

    shuffled_previous: dict[str, Collection[TopicPartition]] = {}
    for m in order(list(previous)):
        tps = rng.sample(previous[m], len(previous[m]))
        shuffled_previous[m] = rng.choice([list, tuple, set])(tps)
    return (
        {m: order(subscriptions[m]) for m in order(list(subscriptions))},
        {t: counts[t] for t in order(list(counts))},
        shuffled_previous,
    )


@pytest.mark.parametrize("assignor", ASSIGNORS)
@given(group=mixed_groups(), data=st.data(), rng=st.randoms(use_true_random=False))
def test_result_depends_only_on_contents_not_on_input_order(
    assignor: str, group: tuple[Subscriptions, Counts], data: st.DataObject, rng: random.Random
) -> None:
    subscriptions, counts = group
    previous = data.draw(garbage_previous(subscriptions))
    expected = assign(assignor, subscriptions, counts, previous)
    assert assign(assignor, *_shuffled(rng, subscriptions, counts, previous)) == expected


_HASH_SEED_SCRIPT = """
import json, sys
from raftka.metadata.assignors import ASSIGNORS, assign
case = json.loads(sys.argv[1])
previous = {m: [tuple(tp) for tp in tps] for m, tps in case["previous"].items()}
out = {a: assign(a, case["subscriptions"], case["counts"], previous) for a in ASSIGNORS}
print(json.dumps(out, sort_keys=True))
"""


def test_result_does_not_depend_on_hash_randomisation() -> None:
    # Sets of str iterate in an order that changes with PYTHONHASHSEED: run the same
    # mixed case in processes with different seeds and compare.
    topics = [f"topic-{i}" for i in range(7)]
    case = {
        "subscriptions": {f"m{i}": topics[i % 3 : i % 3 + 4] for i in range(9)},
        "counts": {t: 5 + i for i, t in enumerate(topics)},
        "previous": {"m1": [["topic-0", 0], ["topic-3", 2]], "m4": [["topic-3", 2]]},
    }
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", _HASH_SEED_SCRIPT, json.dumps(case)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1


# --- sticky --------------------------------------------------------------------------


@given(group=uniform_groups(), data=st.data())
def test_sticky_moves_only_what_exceeds_each_members_quota(
    group: tuple[Subscriptions, Counts], data: st.DataObject
) -> None:
    subscriptions, counts = group
    previous = data.draw(clean_previous(subscriptions))
    result = assign("sticky", subscriptions, counts, previous)
    valid = still_valid(subscriptions, counts, previous)
    owners = owner_of(result)
    moved = sum(1 for m, tps in valid.items() for tp in tps if owners[tp] != m)
    # Balanced means quotas of q, and q + 1 for r members; giving the r extra
    # quotas to members that hold more than q already saves one move each.
    q, r = divmod(len(subscribed_partitions(subscriptions, counts)), len(subscriptions))
    over = [len(v) - q for v in valid.values() if len(v) > q]
    assert moved == sum(over) - min(r, len(over))
    for member, tps in valid.items():
        assert len(tps & set(result[member])) >= min(len(tps), q)


@pytest.mark.parametrize("earlier", ASSIGNORS)
@given(group=uniform_groups())
def test_sticky_returns_previous_unchanged_when_members_and_partitions_are_unchanged(
    earlier: str, group: tuple[Subscriptions, Counts]
) -> None:
    # Any balanced assignment of the same members and partitions is kept as it is.
    subscriptions, counts = group
    previous = assign(earlier, subscriptions, counts, {})
    assert assign("sticky", subscriptions, counts, previous) == previous


@given(group=mixed_groups(), data=st.data())
def test_sticky_with_mixed_subscriptions_keeps_its_own_result(
    group: tuple[Subscriptions, Counts], data: st.DataObject
) -> None:
    subscriptions, counts = group
    first = assign("sticky", subscriptions, counts, data.draw(garbage_previous(subscriptions)))
    assert assign("sticky", subscriptions, counts, first) == first


@given(group=mixed_groups(), data=st.data())
def test_sticky_with_mixed_subscriptions_leaves_no_member_two_behind_one_it_could_relieve(
    group: tuple[Subscriptions, Counts], data: st.DataObject
) -> None:
    # The best reasonable balance without equal subscriptions: no single partition
    # could move to another subscriber of its topic holding at least two fewer.
    subscriptions, counts = group
    result = assign("sticky", subscriptions, counts, data.draw(garbage_previous(subscriptions)))
    for tps in result.values():
        for topic, _ in tps:
            for other, topics in subscriptions.items():
                if topic in topics:
                    assert len(result[other]) >= len(tps) - 1


# --- examples ------------------------------------------------------------------------


def _ps(topic: str, *partitions: int) -> tuple[TopicPartition, ...]:
    return tuple((topic, p) for p in partitions)


@dataclass(frozen=True)
class Example:
    assignor: str
    subscriptions: Subscriptions
    counts: Counts
    expected: dict[str, tuple[TopicPartition, ...]]
    previous: Previous = field(default_factory=dict)


ABC_ON_T = {"a": ["t"], "b": ["t"], "c": ["t"]}

EXAMPLES = {
    "range: 3 members x 6 partitions -> 2/2/2, contiguous": Example(
        "range",
        ABC_ON_T,
        {"t": 6},
        {"a": _ps("t", 0, 1), "b": _ps("t", 2, 3), "c": _ps("t", 4, 5)},
    ),
    "roundrobin: 3 members x 6 partitions -> 2/2/2, dealt in turn": Example(
        "roundrobin",
        ABC_ON_T,
        {"t": 6},
        {"a": _ps("t", 0, 3), "b": _ps("t", 1, 4), "c": _ps("t", 2, 5)},
    ),
    "sticky: 3 members x 6 partitions from scratch -> 2/2/2": Example(
        "sticky",
        ABC_ON_T,
        {"t": 6},
        {"a": _ps("t", 0, 3), "b": _ps("t", 1, 4), "c": _ps("t", 2, 5)},
    ),
    "range: the extra partition rotates from topic to topic (Kafka's would give a 4)": Example(
        "range",
        {m: ["t", "t2"] for m in "abc"},
        {"t": 4, "t2": 4},
        {
            "a": _ps("t", 0, 1) + _ps("t2", 0),
            "b": _ps("t", 2) + _ps("t2", 1, 2),
            "c": _ps("t", 3) + _ps("t2", 3),
        },
    ),
    "sticky: a member leaves, the survivors keep theirs and share its partitions": Example(
        "sticky",
        {"a": ["t"], "b": ["t"]},
        {"t": 6},
        {"a": _ps("t", 0, 1, 4), "b": _ps("t", 2, 3, 5)},
        previous={"a": list(_ps("t", 0, 1)), "b": list(_ps("t", 2, 3)), "c": list(_ps("t", 4, 5))},
    ),
    "sticky: a member joins, each old member gives up only its excess": Example(
        "sticky",
        ABC_ON_T,
        {"t": 6},
        {"a": _ps("t", 0, 1), "b": _ps("t", 3, 4), "c": _ps("t", 2, 5)},
        previous={"a": list(_ps("t", 0, 1, 2)), "b": list(_ps("t", 3, 4, 5))},
    ),
    "sticky: a partition claimed twice stays with the lower member id": Example(
        "sticky",
        {"a": ["t"], "b": ["t"]},
        {"t": 2},
        {"a": _ps("t", 0), "b": _ps("t", 1)},
        previous={"b": list(_ps("t", 0)), "a": list(_ps("t", 0, 7))},
    ),
    "sticky: the extra partition stays with the member that already had the most": Example(
        "sticky",
        ABC_ON_T,
        {"t": 7},
        {"a": _ps("t", 0, 2), "b": _ps("t", 1, 3), "c": _ps("t", 4, 5, 6)},
        previous={"c": list(_ps("t", 4, 5, 6))},
    ),
    "sticky: a member that unsubscribes from a topic gives its partitions up": Example(
        "sticky",
        {"a": ["t", "orders"], "b": ["t"]},
        {"t": 2, "orders": 2},
        {"a": _ps("orders", 0, 1), "b": _ps("t", 0, 1)},
        previous={"a": list(_ps("orders", 0, 1)), "b": list(_ps("t", 0, 1))},
    ),
    "any: a missing topic and an unsubscribed one are assigned to nobody": Example(
        DEFAULT_ASSIGNOR,
        {"a": ["t", MISSING_TOPIC], "b": []},
        {"t": 1, "orders": 3},
        {"a": _ps("t", 0), "b": ()},
    ),
    "roundrobin: mixed subscriptions skip the members not subscribed (Kafka's)": Example(
        "roundrobin",
        {"a": ["t"], "b": ["t", "t2"], "c": ["t2"]},
        {"t": 3, "t2": 3},
        {"a": _ps("t", 0, 2), "b": _ps("t", 1) + _ps("t2", 0, 2), "c": _ps("t2", 1)},
    ),
    "sticky: mixed subscriptions are balanced where the subscriptions allow": Example(
        "sticky",
        {"a": ["t"], "b": ["t", "t2"], "c": ["t2"]},
        {"t": 4, "t2": 2},
        {"a": _ps("t", 0, 2), "b": _ps("t", 1, 3), "c": _ps("t2", 0, 1)},
    ),
}


@pytest.mark.parametrize("example", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_example(example: Example) -> None:
    result = assign(example.assignor, example.subscriptions, example.counts, example.previous)
    assert result == example.expected


def test_an_unknown_assignor_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown assignor 'cooperative'"):
        assign("cooperative", {"a": ["t"]}, {"t": 1}, {})


def test_topics_given_as_a_bare_string_are_refused() -> None:
    with pytest.raises(TypeError):
        # The type checker cannot catch this one: a str is a Sequence[str].
        assign("range", {"a": "orders"}, {"orders": 1}, {})


def test_an_empty_group_gets_an_empty_assignment() -> None:
    assert {a: assign(a, {}, {"t": 3}, {}) for a in ASSIGNORS} == {a: {} for a in ASSIGNORS}


# --- scale ---------------------------------------------------------------------------


@pytest.mark.parametrize("assignor", ASSIGNORS)
@pytest.mark.parametrize("topics", [1, 10, 1000], ids=lambda n: f"{n}-topics")
def test_100_members_and_1000_partitions_rebalance_evenly_after_a_leave(
    assignor: str, topics: int
) -> None:
    names = [f"topic-{i:04d}" for i in range(topics)]
    members = [f"member-{i:03d}" for i in range(100)]
    counts = {t: 1000 // topics for t in names}
    before = assign(assignor, {m: names for m in members}, counts, {})
    after_leave = {m: names for m in members[1:]}
    result = assign(assignor, after_leave, counts, before)
    assert Counter(partition_totals(result)) == {10: 89, 11: 10}
