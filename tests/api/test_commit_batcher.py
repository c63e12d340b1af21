"""OffsetCommitBatcher: many commits to one metadata entry, one entry in flight, each
submitted once, a bounded queue. `submit` is its one parameter to the outside (the
broker's Raft submit); here a recorder stands in, so the order and count of entries show."""

from __future__ import annotations

import asyncio

import pytest

from raftka.api.broker import commit_batcher
from raftka.api.broker.commit_batcher import OffsetCommitBatcher
from raftka.metadata.commands import CommitOffsets, OffsetCommit
from raftka.metadata.errors import CoordinatorNotAvailable, NoController, StaleGeneration
from raftka.metadata.events import OffsetsCommitted
from raftka.metadata.model import MetadataState
from raftka.metadata.state import Applied


def commit(member: str, offset: int) -> OffsetCommit:
    return OffsetCommit("g", member, 1, (("t", 0, offset),))


class Recorder:
    """Answers each entry when told to; remembers every entry it was given."""

    def __init__(self) -> None:
        self.entries: list[CommitOffsets] = []
        self.answers: asyncio.Queue[object] = asyncio.Queue()

    async def __call__(self, entry: CommitOffsets) -> Applied:
        self.entries.append(entry)
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, tuple)
        return Applied(MetadataState.empty(), (OffsetsCommitted(answer),))


async def test_commits_waiting_behind_an_entry_go_together_in_the_next() -> None:
    submit = Recorder()
    batcher = OffsetCommitBatcher(submit, coordinator=1)
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.commit(commit("a", 1)))
        while not submit.entries:
            await asyncio.sleep(0)
        rest = [asyncio.ensure_future(batcher.commit(commit(m, 2))) for m in "bcd"]
        await asyncio.sleep(0)
        assert len(submit.entries) == 1  # one entry in flight at a time
        submit.answers.put_nowait(("",))
        await first
        while len(submit.entries) < 2:
            await asyncio.sleep(0)
        assert [c.member_id for c in submit.entries[1].commits] == ["b", "c", "d"]
        assert submit.entries[1].coordinator == 1
        submit.answers.put_nowait(("", "STALE_GENERATION: moved on", ""))
        results = await asyncio.gather(*rest, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], StaleGeneration)
    finally:
        await batcher.stop()


async def test_a_failed_entry_fails_its_commits_and_is_never_submitted_again() -> None:
    submit = Recorder()
    batcher = OffsetCommitBatcher(submit, coordinator=1)
    batcher.start()
    try:
        submit.answers.put_nowait(NoController("no quorum"))
        with pytest.raises(NoController):
            await batcher.commit(commit("a", 5))
        submit.answers.put_nowait(("",))
        await batcher.commit(commit("a", 6))
        assert [e.commits[0].offsets for e in submit.entries] == [
            (("t", 0, 5),),
            (("t", 0, 6),),
        ]
    finally:
        await batcher.stop()


async def test_a_full_queue_refuses_a_commit_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_batcher, "MAX_PENDING_COMMITS", 3)
    submit = Recorder()
    batcher = OffsetCommitBatcher(submit, coordinator=1)  # not started: nothing drains
    waiting = [asyncio.ensure_future(batcher.commit(commit(m, 1))) for m in "abc"]
    await asyncio.sleep(0)
    with pytest.raises(CoordinatorNotAvailable):
        await batcher.commit(commit("d", 1))
    await batcher.stop()
    for task in waiting:
        with pytest.raises(CoordinatorNotAvailable):
            await task
