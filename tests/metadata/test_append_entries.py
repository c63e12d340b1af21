"""The AppendEntries guard around pysyncobj: a re-sent message never makes a follower delete
entries it already holds with the same term (Raft deletes only from the first conflict)."""

from __future__ import annotations

from typing import Any

import pytest

from raftka.metadata.quorum import skip_present_entries


def log(*terms: int, start: int = 1) -> list[tuple[Any, int, int]]:
    """Entries (command, index, term) from index `start`, one per term given."""
    return [(f"c{start + k}".encode(), start + k, term) for k, term in enumerate(terms)]


def message(prev_index: int, prev_term: int, entries: list[tuple[Any, int, int]]) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": 3,
        "commit_index": 0,
        "prevLogIdx": prev_index,
        "prevLogTerm": prev_term,
        "entries": entries,
    }


def effect(msg: dict[str, Any]) -> tuple[int, list[int]]:
    """What pysyncobj will do with it: delete after prevLogIdx, append these indexes."""
    return msg["prevLogIdx"], [e[1] for e in msg["entries"]]


@pytest.mark.parametrize(
    ("local_terms", "commit_index", "msg", "keeps_through", "appends"),
    [
        # Re-sent entries 3..4 that we hold, with 5..6 of ours after them, committed to 6:
        # pysyncobj alone would delete 5..6 (applied!); we keep all of it.
        ((1, 1, 2, 2, 2, 2), 6, message(2, 1, log(2, 2, start=3)), 6, []),
        # Same, but only 5 is committed: 6 is unverified and uncommitted, so it may go.
        ((1, 1, 2, 2, 2, 2), 5, message(2, 1, log(2, 2, start=3)), 5, []),
        # A real conflict at 4 (we have term 2, the leader term 3): delete from 4 only.
        ((1, 1, 2, 2, 2), 3, message(2, 1, log(2, 3, 3, start=3)), 3, [4, 5]),
        # New entries past our end, after matching ones: append only the new ones.
        ((1, 1, 2), 3, message(1, 1, log(1, 2, 3, start=2)), 3, [4]),
        # A heartbeat (no entries) to a follower ahead of it: keep what is committed.
        ((1, 1, 2, 2), 4, message(2, 1, []), 4, []),
    ],
)
def test_entries_already_present_are_never_deleted(
    local_terms: tuple[int, ...],
    commit_index: int,
    msg: dict[str, Any],
    keeps_through: int,
    appends: list[int],
) -> None:
    ours = log(*local_terms)
    local = ours[msg["prevLogIdx"] - 1 :]
    out = skip_present_entries(msg, local, commit_index)
    assert effect(out) == (keeps_through, appends)
    assert out["prevLogTerm"] == ours[keeps_through - 1][2]


@pytest.mark.parametrize(
    ("local", "msg"),
    [
        ([], message(5, 1, log(1, start=6))),  # we lack prevLogIdx: pysyncobj says so
        (log(2, start=2), message(2, 1, log(1, start=3))),  # prevLogTerm mismatch
        (log(1, start=2), message(2, 1, log(1, start=3))),  # nothing of ours after prev
    ],
)
def test_messages_pysyncobj_handles_correctly_pass_unchanged(
    local: list[tuple[Any, int, int]], msg: dict[str, Any]
) -> None:
    assert skip_present_entries(msg, local, 0) is msg
