"""The checker on hand-written histories: each scenario holds exactly one kind of anomaly
and must fail exactly the invariants named; the clean ones (including the legitimate
re-reads of at-least-once delivery) must pass."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raftka.chaos.checker import (
    COMMITS_MONOTONIC,
    DIVERGENCE,
    DUPLICATED,
    EXCLUSIVE_ASSIGNMENT,
    FINAL_READ_INVARIANT,
    INVARIANTS,
    LOST,
    OFFSET_MISMATCH,
    PHANTOM,
    REORDERED,
    check,
)
from raftka.chaos.history import OpType

from .story import Story

A, B = (0, 0, "a"), (0, 1, "b")


def base() -> Story:
    """Three acked sends; a plain reader and a group member read partition 0 and commit."""
    s = Story()
    s.send(1, "a", 0, 0).send(1, "b", 0, 1).send(1, "c", 1, 0)
    s.poll(2, A, B)
    s.member(3, "join", "g", "m1", 1, 0, 1)
    s.poll(3, A, B, group="g", member="m1", generation=1)
    s.commit(3, "g", "m1", 1, 0, 2)
    return s.member(3, "heartbeat", "g", "m1", 1, 0, 1)


def final(s: Story) -> Story:
    return s.final(0, (0, "a"), (1, "b")).final(1, (0, "c"))


Scenario = Callable[[], Story]

CLEAN: dict[str, Scenario] = {
    "the base history": lambda: final(base()),
    "an unknown send that was written is fine": lambda: final(base().send_unknown(1, "d")).final(
        1, (1, "d")
    ),
    "an unknown send never written is fine": lambda: final(base().send_unknown(1, "d")),
    "a member re-reads from the committed offset within its generation (coordinator takeover)": (
        lambda: (
            base()
            .send(1, "d", 0, 2)
            .poll(3, (0, 2, "d"), group="g", member="m1", generation=1)
            .poll(3, (0, 2, "d"), group="g", member="m1", generation=1)
            .final(0, (0, "a"), (1, "b"), (2, "d"))
            .final(1, (0, "c"))
        )
    ),
    "a member re-reads anything after a new generation": lambda: final(
        base()
        .member(3, "heartbeat", "g", "m1", 2, 0, 1)
        .poll(3, A, group="g", member="m1", generation=2)
        .commit(3, "g", "m1", 2, 0, 2)
    ),
    "a poll whose next answer is a newer generation is not judged": lambda: final(
        base()
        .poll(3, (1, 0, "c"), group="g", member="m1", generation=1)
        .member(3, "heartbeat", "g", "m1", 2, 1)
        .member(4, "join", "g", "m2", 2, 0)
    ),
    "a new owner commits from where the old one stopped": lambda: final(
        base()
        .member(4, "join", "g", "m2", 2, 0)
        .member(3, "heartbeat", "g", "m1", 2, 1)
        .poll(4, group="g", member="m2", generation=2)
        .commit(4, "g", "m2", 2, 0, 2)
    ),
    "overlapping commits are not ordered": lambda: final(
        base()
        .invoke(3, "commit")
        .invoke(4, "commit")
        .complete(
            3,
            OpType.OK,
            "commit",
            group="g",
            member_id="m1",
            generation=1,
            offsets=[{"topic": "t", "partition": 1, "offset": 5}],
        )
        .complete(
            4,
            OpType.OK,
            "commit",
            group="g",
            member_id="m1",
            generation=1,
            offsets=[{"topic": "t", "partition": 1, "offset": 3}],
        )
    ),
    "an empty partition read by the final reader counts as read": lambda: final(
        Story().send(1, "a", 0, 0).send(1, "b", 0, 1).send(1, "c", 1, 0)
    ).final(2),
}


ANOMALIES: dict[str, tuple[Scenario, set[str]]] = {
    "an acked send missing from the final read": (
        lambda: base().final(0, (0, "a")).final(1, (0, "c")),
        {LOST},
    ),
    "no final read": (lambda: base(), {FINAL_READ_INVARIANT, LOST}),
    "a partition the final read missed, never polled": (
        lambda: base().final(0, (0, "a"), (1, "b")),
        {FINAL_READ_INVARIANT, LOST},
    ),
    "a value read at two offsets": (
        lambda: base().final(0, (0, "a"), (1, "b"), (2, "a")).final(1, (0, "c")),
        {DUPLICATED},
    ),
    "a value acknowledged at two offsets (idempotent retry written twice)": (
        lambda: base().send(1, "b", 0, 2).final(0, (0, "a"), (1, "b"), (2, "b")).final(1, (0, "c")),
        {DUPLICATED},
    ),
    "an acked value found at another offset": (
        lambda: Story().send(1, "a", 0, 0).send(1, "b", 0, 1).final(0, (0, "b"), (1, "a")),
        {OFFSET_MISMATCH},
    ),
    "a value never sent": (
        lambda: final(base()).final(1, (1, "zzz")),
        {PHANTOM},
    ),
    "a value whose send failed": (
        lambda: final(base().send_unknown(1, "f", OpType.FAIL)).final(1, (1, "f")),
        {PHANTOM},
    ),
    "one offset read with two values": (
        lambda: final(base().send_unknown(1, "x").poll(2, (1, 0, "x"))),
        {DIVERGENCE},
    ),
    "a plain reader going back": (lambda: final(base().poll(2, B)), {REORDERED}),
    "offsets going back inside one poll": (
        lambda: final(base().poll(5, B, A)),
        {REORDERED},
    ),
    "a member going back below the committed offset within its generation": (
        lambda: final(base().poll(3, A, group="g", member="m1", generation=1)),
        {REORDERED},
    ),
    "the final reader going back": (
        lambda: base().final(0, (1, "b"), (0, "a")).final(1, (0, "c")),
        {REORDERED},
    ),
    "two members holding one partition in one generation": (
        lambda: final(base().member(4, "join", "g", "m2", 1, 1)),
        {EXCLUSIVE_ASSIGNMENT},
    ),
    "a poll of a partition outside the member's assignment": (
        lambda: final(
            base()
            .poll(3, (1, 0, "c"), group="g", member="m1", generation=1)
            .member(3, "heartbeat", "g", "m1", 1, 0)
        ),
        {EXCLUSIVE_ASSIGNMENT},
    ),
    "a member's commit going back": (
        lambda: final(base().commit(3, "g", "m1", 1, 0, 1)),
        {COMMITS_MONOTONIC},
    ),
    "a new owner committing below the old owner": (
        lambda: final(
            base()
            .member(3, "heartbeat", "g", "m1", 2, 1)
            .member(4, "join", "g", "m2", 2, 0)
            .commit(4, "g", "m2", 2, 0, 1)
        ),
        {COMMITS_MONOTONIC},
    ),
}


@pytest.mark.parametrize("name", CLEAN)
def test_a_clean_history_passes(name: str) -> None:
    result = check(CLEAN[name]().history)
    assert result.failed() == [], result.to_json()
    assert result.ok


@pytest.mark.parametrize("name", ANOMALIES)
def test_an_anomaly_fails_exactly_its_invariants(name: str) -> None:
    scenario, expected = ANOMALIES[name]
    result = check(scenario().history)
    assert set(result.failed()) == expected, result.to_json()
    for invariant in expected:
        assert result.invariants[invariant].details, invariant


def test_counts_name_each_kind_of_anomaly() -> None:
    s = base().send(1, "d", 1, 1).send(1, "e", 1, 2)
    s.poll(2, B).poll(2, A)
    s.final(0, (0, "a"), (1, "b"), (2, "a")).final(1, (0, "c"))
    result = check(s.history)
    assert (result.acked, result.lost, result.duplicated, result.reordered) == (5, 2, 1, 2)
    report = result.to_json()
    assert report["lost"] == 2 and not report["ok"]
    assert set(report["invariants"]) == set(INVARIANTS)
    assert report["invariants"][LOST]["details"][0].startswith('"d" acked at t/1@1')


def test_details_are_capped_but_the_count_is_not() -> None:
    s = Story()
    for i in range(50):
        s.send(1, f"v{i}", 0, i)
    result = check(s.final(0).history)
    assert result.lost == 50
    assert len(result.invariants[LOST].details) == 20
