"""The leader's rules: fetch checks, follower progress, the high watermark, ISR decisions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from raftka.replication.leader import (
    ISR_CHANGE_RETRY_BACKOFF_MS,
    FetchVerdict,
    FollowerFetch,
    PartitionLeader,
    check_follower_fetch,
)
from raftka.storage.epochs import EpochEntry, LeaderEpochCache

LEADER, F1, F2 = 1, 2, 3
REPLICAS = (LEADER, F1, F2)
LAG_MS = 10_000


@dataclass
class Log:
    """A leader's log as the rules see it: offsets and the real leader-epoch cache."""

    log_start_offset: int = 0
    log_end_offset: int = 100
    epochs: list[tuple[int, int]] = field(default_factory=lambda: [(1, 0), (3, 40), (5, 70)])

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        cache = LeaderEpochCache(EpochEntry(e, start) for e, start in self.epochs)
        return cache.end_offset_for(epoch, self.log_end_offset)


# ---- check_follower_fetch ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("leader_epoch", "fetch_offset", "last_fetched_epoch", "replica", "verdict", "diverging"),
    [
        # epoch fencing first (KIP-320)
        (4, 100, 5, F1, FetchVerdict.FENCED_LEADER_EPOCH, None),
        (6, 100, 5, F1, FetchVerdict.UNKNOWN_LEADER_EPOCH, None),
        (5, 100, 5, 9, FetchVerdict.NOT_REPLICA, None),
        # a follower in step
        (5, 100, 5, F1, FetchVerdict.READ, None),
        (5, 80, 5, F1, FetchVerdict.READ, None),
        (5, 40, 3, F1, FetchVerdict.READ, None),
        (5, 0, -1, F1, FetchVerdict.READ, None),
        # an old leader's tail: epoch 3 ended at 70 here, the follower has it up to 75
        (5, 75, 3, F1, FetchVerdict.DIVERGING, (3, 70)),
        # an epoch the leader never had: the leader answers its floor epoch and its end
        (5, 60, 4, F1, FetchVerdict.DIVERGING, (3, 70)),
        (5, 60, 2, F1, FetchVerdict.DIVERGING, (1, 40)),
        # past the leader's end within its last epoch
        (5, 120, 5, F1, FetchVerdict.DIVERGING, (5, 100)),
        # out of range without epoch history
        (5, 120, -1, F1, FetchVerdict.OFFSET_OUT_OF_RANGE, None),
    ],
)
def test_a_follower_fetch_is_checked_in_kafkas_order(
    leader_epoch: int,
    fetch_offset: int,
    last_fetched_epoch: int,
    replica: int,
    verdict: FetchVerdict,
    diverging: tuple[int, int] | None,
) -> None:
    check = check_follower_fetch(
        Log(), 5, REPLICAS, FollowerFetch(replica, leader_epoch, fetch_offset, last_fetched_epoch)
    )
    assert (check.verdict, check.diverging_epoch) == (verdict, diverging)


def test_a_fetch_below_the_log_start_is_out_of_range() -> None:
    check = check_follower_fetch(
        Log(log_start_offset=50), 5, REPLICAS, FollowerFetch(F1, 5, 10, -1)
    )
    assert check.verdict is FetchVerdict.OFFSET_OUT_OF_RANGE


# ---- the high watermark ----------------------------------------------------------------------


def leader(
    isr: tuple[int, ...] = REPLICAS, hw: int = 0, now_ms: int = 0, epoch_start: int = 0
) -> PartitionLeader:
    return PartitionLeader(
        broker_id=LEADER,
        replicas=REPLICAS,
        isr=isr,
        partition_epoch=1,
        epoch_start_offset=epoch_start,
        high_watermark=hw,
        now_ms=now_ms,
        replica_lag_time_max_ms=LAG_MS,
    )


def test_the_high_watermark_waits_for_every_isr_member() -> None:
    p = leader()
    assert not p.on_follower_fetch(F1, 10, 10, now_ms=1)
    assert p.high_watermark == 0, "F2's position is unknown"
    assert p.on_follower_fetch(F2, 7, 10, now_ms=2)
    assert p.high_watermark == 7
    assert p.on_follower_fetch(F2, 10, 10, now_ms=3)
    assert p.high_watermark == 10


def test_the_high_watermark_ignores_replicas_outside_the_isr() -> None:
    p = leader(isr=(LEADER, F1))
    p.on_follower_fetch(F1, 10, 10, now_ms=1)
    assert p.high_watermark == 10


def test_the_high_watermark_never_moves_backwards() -> None:
    p = leader(hw=50)
    p.on_follower_fetch(F1, 20, 60, now_ms=1)
    p.on_follower_fetch(F2, 20, 60, now_ms=1)
    assert p.high_watermark == 50


def test_a_leader_alone_in_the_isr_commits_its_own_log_end() -> None:
    p = leader(isr=(LEADER,))
    assert p.advance_high_watermark(42)
    assert p.high_watermark == 42


def test_a_pending_addition_holds_the_high_watermark_back() -> None:
    p = leader(isr=(LEADER, F1))
    p.on_follower_fetch(F1, 10, 10, now_ms=1)
    p.on_follower_fetch(F2, 10, 10, now_ms=1)
    assert p.isr_change_to_propose(now_ms=2) == REPLICAS
    assert p.maximal_isr == (LEADER, F1, F2)
    p.on_follower_fetch(F1, 20, 20, now_ms=3)
    assert p.high_watermark == 10, "F2 may be in the ISR already: wait for it"


# ---- ISR shrink and expand ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fetches", "now_ms", "out_of_sync"),
    [
        # (replica, fetch offset, leader log end, time) ...
        ([], LAG_MS, []),  # ISR members start caught up at election time
        ([], LAG_MS + 1, [F1, F2]),  # nobody fetched for the whole lag time
        ([(F1, 10, 10, 5_000), (F2, 10, 10, 5_000)], 5_000 + LAG_MS, []),
        ([(F1, 10, 10, 5_000)], 5_000 + LAG_MS, [F2]),
        # fetching, but never reaching the leader's end: caught up only at the first fetch
        ([(F1, 5, 10, 1_000), (F1, 6, 20, 2_000), (F1, 7, 30, 3_000)], 1 + LAG_MS, [F1, F2]),
        # reaching the end the leader had at the previous fetch counts as caught up then
        ([(F1, 5, 10, 1_000), (F1, 10, 20, 9_000)], 1_000 + LAG_MS, [F2]),
    ],
)
def test_a_follower_leaves_the_isr_after_lagging_for_replica_lag_time_max(
    fetches: list[tuple[int, int, int, int]], now_ms: int, out_of_sync: list[int]
) -> None:
    p = leader()
    for replica, offset, leo, at in fetches:
        p.on_follower_fetch(replica, offset, leo, at)
    assert p.out_of_sync_replicas(now_ms) == out_of_sync


def test_shrinking_is_proposed_once_until_it_commits_or_fails() -> None:
    p = leader()
    assert p.isr_change_to_propose(LAG_MS + 1) == (LEADER,)
    assert p.isr_change_to_propose(LAG_MS + 2) is None, "one change in flight"
    p.isr_change_failed(LAG_MS + 3)
    assert p.isr_change_to_propose(LAG_MS + 4) is None, "a failed change waits its backoff"
    assert p.isr_change_to_propose(LAG_MS + 3 + ISR_CHANGE_RETRY_BACKOFF_MS) == (LEADER,)
    p.committed(REPLICAS, (LEADER,), partition_epoch=2, now_ms=LAG_MS + 4)
    assert p.isr == (LEADER,) and p.pending_isr is None


# Found by the simulation: an expansion whose answer was lost was dropped, so the high
# watermark moved on without the replica the controller had in fact added; elected after
# the leader died, that replica lacked acknowledged records.
def test_a_change_whose_outcome_is_unknown_stays_pending_and_goes_again() -> None:
    p = leader(isr=(LEADER,))
    p.on_follower_fetch(F1, 0, 0, now_ms=1)  # at the high watermark: it may join
    assert p.isr_change_to_propose(now_ms=2) == (LEADER, F1)
    p.isr_change_failed(3, outcome_unknown=True)
    assert p.maximal_isr == (LEADER, F1)
    assert not p.advance_high_watermark(5), "F1 may be in the ISR already: wait for it"
    assert p.isr_change_to_propose(4) is None, "a failed change waits its backoff"
    assert p.isr_change_to_propose(3 + ISR_CHANGE_RETRY_BACKOFF_MS) == (LEADER, F1)
    assert p.isr_change_to_propose(4 + ISR_CHANGE_RETRY_BACKOFF_MS) is None, "in flight"
    p.committed(REPLICAS, (LEADER, F1), partition_epoch=2, now_ms=5 + ISR_CHANGE_RETRY_BACKOFF_MS)
    assert p.pending_isr is None and p.isr == (LEADER, F1)


def test_a_refused_change_is_forgotten_and_the_next_one_starts_afresh() -> None:
    p = leader(isr=(LEADER,))
    p.on_follower_fetch(F1, 0, 0, now_ms=1)
    assert p.isr_change_to_propose(now_ms=2) == (LEADER, F1)
    p.isr_change_failed(3)  # e.g. F1 is fenced: nothing was committed
    assert p.maximal_isr == (LEADER,)
    assert p.advance_high_watermark(5)


@pytest.mark.parametrize(
    ("follower_end", "hw", "epoch_start", "joins"),
    [
        (10, 10, 0, True),
        (9, 10, 0, False),  # below the high watermark
        (10, 10, 12, False),  # has not reached this leader epoch: may hold a divergent tail
        (12, 10, 12, True),
    ],
)
def test_a_follower_rejoins_at_the_high_watermark_and_this_epochs_start(
    follower_end: int, hw: int, epoch_start: int, joins: bool
) -> None:
    p = leader(isr=(LEADER, F1), hw=hw, epoch_start=epoch_start)
    p.on_follower_fetch(F1, max(hw, epoch_start), max(hw, epoch_start), now_ms=1)
    p.on_follower_fetch(F2, follower_end, max(hw, epoch_start), now_ms=1)
    expected = REPLICAS if joins else None
    assert p.isr_change_to_propose(now_ms=2) == expected


def test_a_committed_change_of_an_older_partition_epoch_is_ignored() -> None:
    p = leader()
    p.committed(REPLICAS, (LEADER, F1), partition_epoch=3, now_ms=1)
    p.committed(REPLICAS, REPLICAS, partition_epoch=2, now_ms=2)
    assert p.isr == (LEADER, F1)
