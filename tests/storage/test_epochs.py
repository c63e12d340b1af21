"""LeaderEpochCache: assign, end_offset_for (Kafka's endOffsetFor), truncation, checkpoint text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.storage.epochs import EpochEntry, LeaderEpochCache
from raftka.storage.errors import CorruptCheckpointError

Pairs = list[tuple[int, int]]


def cache(pairs: Pairs) -> LeaderEpochCache:
    return LeaderEpochCache(EpochEntry(e, s) for e, s in pairs)


def pairs_of(c: LeaderEpochCache) -> Pairs:
    return [(e.epoch, e.start_offset) for e in c.entries()]


# (entries before, assign(epoch, start_offset), changed, entries after)
ASSIGN_CASES = [
    ([], (0, 0), True, [(0, 0)]),
    ([(1, 0)], (3, 10), True, [(1, 0), (3, 10)]),
    ([(1, 0), (3, 10)], (3, 15), False, [(1, 0), (3, 10)]),  # the latest epoch again
    ([(1, 0), (3, 10)], (3, 5), False, [(1, 0), (3, 10)]),  # even at a lower offset
    ([(1, 0), (3, 10)], (2, 20), False, [(1, 0), (3, 10)]),  # an older epoch is ignored
    # a newer epoch removes entries starting at or after its start (non-monotonic cleanup)
    ([(1, 0), (3, 10)], (4, 10), True, [(1, 0), (4, 10)]),
    ([(1, 0), (3, 10)], (4, 5), True, [(1, 0), (4, 5)]),
    ([(1, 5), (3, 10)], (4, 5), True, [(4, 5)]),
]


@pytest.mark.parametrize(("before", "assign", "changed", "after"), ASSIGN_CASES)
def test_assign_appends_only_newer_epochs(
    before: Pairs, assign: tuple[int, int], changed: bool, after: Pairs
) -> None:
    c = cache(before)
    assert c.assign(*assign) is changed
    assert pairs_of(c) == after
    assert c.latest_epoch == after[-1][0]


def test_assign_refuses_negative_values_and_empty_cache_has_undefined_epoch() -> None:
    c = LeaderEpochCache()
    assert c.latest_epoch == -1 and c.entries() == ()
    with pytest.raises(ValueError):
        c.assign(-1, 0)
    with pytest.raises(ValueError):
        c.assign(0, -1)


KNOWN = [(1, 0), (3, 10), (5, 20)]
LOG_END = 30

# (entries, requested epoch, expected): Kafka's LeaderEpochFileCache.endOffsetFor
END_OFFSET_CASES = [
    (KNOWN, -1, (-1, -1)),  # undefined asks get undefined answers
    (KNOWN, 5, (5, LOG_END)),  # the latest epoch ends at the log end
    (KNOWN, 6, (-1, -1)),  # newer than anything known
    (KNOWN, 0, (0, 0)),  # older than anything known: the requested epoch, first start
    (KNOWN, 1, (1, 10)),  # a known epoch ends where the next starts
    (KNOWN, 2, (1, 10)),  # an unknown one in between: the floor epoch, the next start
    (KNOWN, 3, (3, 20)),
    (KNOWN, 4, (3, 20)),
    ([], -1, (-1, -1)),
    ([], 0, (-1, -1)),  # an empty cache knows nothing
    ([(2, 7)], 2, (2, LOG_END)),
    ([(2, 7)], 1, (1, 7)),
]


@pytest.mark.parametrize(("pairs", "requested", "expected"), END_OFFSET_CASES)
def test_end_offset_for_follows_kafka(
    pairs: Pairs, requested: int, expected: tuple[int, int]
) -> None:
    assert cache(pairs).end_offset_for(requested, LOG_END) == expected


@pytest.mark.parametrize(
    ("end_offset", "after"),
    [(30, KNOWN), (21, KNOWN), (20, [(1, 0), (3, 10)]), (11, [(1, 0), (3, 10)]), (0, [])],
)
def test_truncate_from_end_drops_entries_starting_at_or_after(
    end_offset: int, after: Pairs
) -> None:
    c = cache(KNOWN)
    assert c.truncate_from_end(end_offset) is (after != KNOWN)
    assert pairs_of(c) == after


@pytest.mark.parametrize(
    ("start_offset", "after"),
    [
        (0, KNOWN),
        (4, [(1, 4), (3, 10), (5, 20)]),  # the epoch in force there now starts there
        (10, [(3, 10), (5, 20)]),  # entries wholly below go
        (15, [(3, 15), (5, 20)]),
        (25, [(5, 25)]),
        (40, [(5, 40)]),  # the latest epoch is kept even past the last entry
    ],
)
def test_truncate_from_start_forgets_what_lies_below(start_offset: int, after: Pairs) -> None:
    c = cache(KNOWN)
    assert c.truncate_from_start(start_offset) is (after != KNOWN)
    assert pairs_of(c) == after


def test_clear_empties_the_cache() -> None:
    c = cache(KNOWN)
    assert c.clear() and c.entries() == () and not c.clear()


def test_checkpoint_text_is_kafkas_format() -> None:
    assert cache(KNOWN).to_text() == "0\n3\n1 0\n3 10\n5 20\n"
    assert LeaderEpochCache().to_text() == "0\n0\n"


increasing_pairs = st.tuples(
    st.sets(st.integers(0, 50), max_size=8), st.sets(st.integers(0, 10**6), max_size=8)
).map(lambda sets: list(zip(sorted(sets[0]), sorted(sets[1]), strict=False)))


@given(pairs=increasing_pairs)
def test_checkpoint_text_round_trips(pairs: Pairs) -> None:
    c = cache(pairs)
    assert pairs_of(LeaderEpochCache.from_text(c.to_text())) == pairs_of(c)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0\n",
        "1\n0\n",  # unknown version
        "0\n2\n1 0\n",  # fewer entries than announced
        "0\n1\n1 0\n2 5\n",  # more
        "0\n2\n1 5\n2 5\n",  # start offsets must strictly increase
        "0\n2\n2 0\n1 5\n",  # epochs too
        "0\n1\n1  0\n",
        "0\n1\n1 -3\n",
        "0\n1\n1 0 7\n",
        "0\n1\nx 0\n",
        "0\n+1\n1 0\n",
        "zero\n0\n",
    ],
)
def test_malformed_checkpoint_text_is_refused(text: str) -> None:
    with pytest.raises(CorruptCheckpointError):
        LeaderEpochCache.from_text(text)
