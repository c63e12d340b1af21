"""Idempotent producers: retries answered with their first offsets, gaps and old epochs refused."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.metadata.errors import InvalidProducerEpoch, OutOfOrderSequence
from raftka.replication.producer_state import (
    MAX_BATCHES_PER_PRODUCER,
    Duplicate,
    ProducerBatch,
    ProducerStates,
)

PID = 7


def states_with(*batches: tuple[int, int, int, int]) -> ProducerStates:
    """(epoch, first sequence, count, first offset) per batch, recorded in order."""
    states = ProducerStates()
    for epoch, seq, count, offset in batches:
        states.record(ProducerBatch(PID, epoch, seq, seq + count - 1, offset, offset + count - 1))
    return states


@pytest.mark.parametrize(
    ("written", "request_", "outcome"),
    [
        # (epoch, sequence, count) of the request; outcome: None (append), Duplicate, or error
        ([], (0, 0, 3), None),
        ([], (0, 17, 3), None),  # an unknown producer (new, or its batches are gone)
        ([(0, 0, 3, 100)], (0, 3, 2), None),
        ([(0, 0, 3, 100)], (0, 0, 3), Duplicate(100, 102)),
        ([(0, 0, 3, 100), (0, 3, 2, 200)], (0, 0, 3), Duplicate(100, 102)),
        ([(0, 0, 3, 100), (0, 3, 2, 200)], (0, 3, 2), Duplicate(200, 201)),
        ([(0, 0, 3, 100)], (0, 4, 2), OutOfOrderSequence),  # a gap: batch 3 is missing
        ([(0, 0, 3, 100)], (0, 1, 2), OutOfOrderSequence),  # overlaps, matches no batch
        ([(1, 0, 3, 100)], (0, 3, 1), InvalidProducerEpoch),  # fenced by a newer epoch
        ([(0, 0, 3, 100)], (1, 0, 1), None),  # a new epoch starts at 0
        ([(0, 0, 3, 100)], (1, 3, 1), OutOfOrderSequence),
    ],
)
def test_check_decides_append_duplicate_or_refusal(
    written: list[tuple[int, int, int, int]],
    request_: tuple[int, int, int],
    outcome: object,
) -> None:
    states = states_with(*written)
    epoch, seq, count = request_
    if isinstance(outcome, type) and issubclass(outcome, Exception):
        with pytest.raises(outcome):
            states.check(PID, epoch, seq, count)
    else:
        assert states.check(PID, epoch, seq, count) == outcome


def test_only_the_last_batches_are_remembered() -> None:
    states = states_with(*[(0, i, 1, 100 + i) for i in range(MAX_BATCHES_PER_PRODUCER + 1)])
    assert states.check(PID, 0, 1, 1) == Duplicate(101, 101)
    with pytest.raises(OutOfOrderSequence):
        states.check(PID, 0, 0, 1)  # too old to tell from a gap: refused, never rewritten


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 2**31 - 100), st.integers(1, 5)), max_size=30
    )
)
def test_a_snapshot_round_trip_keeps_every_answer(batches: list[tuple[int, int, int]]) -> None:
    states = ProducerStates()
    offset = 0
    for epoch, seq, count in batches:
        states.record(ProducerBatch(PID, epoch, seq, seq + count - 1, offset, offset + count - 1))
        offset += count
    doc = orjson.loads(orjson.dumps(states.to_snapshot(offset, last_epoch=4)))
    snapshot = ProducerStates.from_snapshot(doc)
    assert (snapshot.offset, snapshot.last_epoch) == (offset, 4)
    copy = snapshot.states
    for epoch, seq, count in batches:
        for probe in ((epoch, seq, count), (epoch, seq + count, 1), (epoch + 1, 0, 1)):
            try:
                expected: object = states.check(PID, *probe)
            except (OutOfOrderSequence, InvalidProducerEpoch) as exc:
                expected = type(exc)
            try:
                got: object = copy.check(PID, *probe)
            except (OutOfOrderSequence, InvalidProducerEpoch) as exc:
                got = type(exc)
            assert got == expected


@pytest.mark.parametrize("doc", [{}, {"version": 9}, {"version": 1, "offset": 0}, []])
def test_a_malformed_snapshot_is_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        ProducerStates.from_snapshot(doc)
