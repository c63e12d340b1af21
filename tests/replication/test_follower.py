"""The follower's rules: what each answer of the leader makes a follower do."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from raftka.replication.follower import (
    Append,
    Backoff,
    FetchAnswer,
    FollowerStep,
    StartAt,
    TruncateTo,
    plan_after_fetch,
    truncation_offset,
)
from raftka.replication.leader import FetchVerdict
from raftka.storage.epochs import EpochEntry, LeaderEpochCache


@dataclass
class Log:
    """A follower's log as the rules see it: its end and the real leader-epoch cache."""

    log_end_offset: int
    epochs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def latest_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else -1

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        cache = LeaderEpochCache(EpochEntry(e, start) for e, start in self.epochs)
        return cache.end_offset_for(epoch, self.log_end_offset)


def answer(verdict: FetchVerdict, **fields: object) -> FetchAnswer:
    values: dict[str, object] = {
        "high_watermark": 50,
        "log_start_offset": 0,
        "log_end_offset": 100,
        "diverging_epoch": None,
        "records": b"",
    }
    values.update(fields)
    return FetchAnswer(verdict, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("local_epochs", "local_end", "leader_says", "truncate_to"),
    [
        # The follower led epoch 3 past where the leader's epoch 3 ended (KIP-101's case).
        ([(1, 0), (3, 40)], 80, (3, 70), 70),
        # The leader's end for the epoch is past ours: keep all we have (we end first).
        ([(1, 0), (3, 40)], 60, (3, 70), 60),
        # We never had the leader's epoch 2: cut to the end of our epoch below it (1 -> 40),
        # the next fetch asks again with epoch 1 (KIP-279).
        ([(1, 0), (3, 40)], 80, (2, 55), 40),
        # The leader's epoch is older than all of ours: everything of ours is divergent.
        ([(4, 10), (6, 30)], 80, (2, 55), 10),
        # An empty epoch history: the leader's end bounds us.
        ([], 80, (2, 55), 55),
    ],
)
def test_a_divergent_follower_truncates_by_leader_epoch(
    local_epochs: list[tuple[int, int]],
    local_end: int,
    leader_says: tuple[int, int],
    truncate_to: int,
) -> None:
    assert truncation_offset(Log(local_end, local_epochs), leader_says) == truncate_to


def test_a_leader_that_does_not_know_our_epoch_is_not_followed_into_truncation() -> None:
    log = Log(80, [(1, 0), (7, 40)])
    assert truncation_offset(log, (-1, -1)) is None
    step = plan_after_fetch(log, 80, answer(FetchVerdict.DIVERGING, diverging_epoch=(-1, -1)))
    assert isinstance(step, Backoff)


@pytest.mark.parametrize(
    ("fetch_offset", "answered", "expected"),
    [
        (10, answer(FetchVerdict.READ, records=b"xyz", high_watermark=7), Append(b"xyz", 7)),
        (10, answer(FetchVerdict.READ), Append(b"", 50)),
        (10, answer(FetchVerdict.OFFSET_OUT_OF_RANGE, log_start_offset=30), StartAt(30)),
        (120, answer(FetchVerdict.OFFSET_OUT_OF_RANGE, log_end_offset=100), TruncateTo(100)),
        (50, answer(FetchVerdict.FENCED_LEADER_EPOCH), Backoff("FENCED_LEADER_EPOCH")),
        (50, answer(FetchVerdict.UNKNOWN_LEADER_EPOCH), Backoff("UNKNOWN_LEADER_EPOCH")),
        (50, answer(FetchVerdict.NOT_LEADER), Backoff("NOT_LEADER")),
    ],
)
def test_each_answer_gives_one_step(
    fetch_offset: int, answered: FetchAnswer, expected: FollowerStep
) -> None:
    assert plan_after_fetch(Log(fetch_offset), fetch_offset, answered) == expected


# Found by the simulation: a replica elected leader announces its epoch at its log end; when
# it lost leadership before writing in it, the new leader (which never had that epoch)
# answered DIVERGING at our log end, and the follower backed off for ever, out of the ISR.
def test_an_epoch_announced_at_our_log_end_and_never_written_is_cut_off() -> None:
    log = Log(40, [(1, 0), (3, 40)])
    step = plan_after_fetch(log, 40, answer(FetchVerdict.DIVERGING, diverging_epoch=(1, 50)))
    assert step == TruncateTo(40)


def test_a_divergence_that_needs_no_truncation_backs_off_instead_of_spinning() -> None:
    log = Log(40, [(1, 0), (3, 40)])
    step = plan_after_fetch(log, 40, answer(FetchVerdict.DIVERGING, diverging_epoch=(3, 70)))
    assert isinstance(step, Backoff)
