"""The leader's rules for one partition: follower progress, the high watermark, ISR changes,
and what a follower's fetch is answered.

Pure: the clock comes in as `now_ms` and the log is read through `LeaderLogView`; it never
awaits, sends or writes anything. `PartitionReplica` feeds it fetches and appends and turns
its decisions into AlterPartition proposals. The rules are Kafka's (Partition.scala,
Replica.scala) and each one is in docs/replication.md with the failure it prevents:

- a follower's log end offset is what it asks to fetch from: it holds everything below;
- the high watermark is the smallest log end offset over the *maximal* ISR (the committed
  ISR plus a pending addition), never moves backwards, and stays put while a member's
  position is unknown;
- a follower is caught up when it fetched at or past the leader's log end offset, or past
  the end the leader had at its previous fetch; one not caught up for
  `replica_lag_time_max_ms` leaves the ISR (Kafka's time-based rule since 0.9: a count of
  messages behind flapped under bursts);
- a follower rejoins once it reaches both the high watermark and the start of the current
  leader epoch; one ISR change is in flight at a time, and the leader acts on committed
  changes only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

UNDEFINED_EPOCH = -1
UNKNOWN_OFFSET = -1
# Kafka's AlterPartitionManager retries a failed change with a backoff too: a follower that
# cannot join (fenced) would otherwise cost a metadata write per fetch.
ISR_CHANGE_RETRY_BACKOFF_MS = 1000


class LeaderLogView(Protocol):
    """What the leader's rules read of its log (the real PartitionLog, or a simulated one)."""

    @property
    def log_start_offset(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]: ...


@dataclass(slots=True)
class FollowerProgress:
    """What the leader knows of one follower (Kafka's ReplicaState)."""

    log_end_offset: int
    last_caught_up_ms: int
    last_fetch_ms: int
    last_fetch_leader_log_end_offset: int


def _new_progress(in_isr: bool, now_ms: int) -> FollowerProgress:
    # ISR members start caught up: they were in sync when this leader was elected.
    return FollowerProgress(UNKNOWN_OFFSET, now_ms if in_isr else 0, 0, UNKNOWN_OFFSET)


class FetchVerdict(enum.Enum):
    READ = "READ"  # serve records from fetch_offset
    DIVERGING = "DIVERGING"  # the follower's tail is not the leader's: it must truncate
    OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
    FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"  # the follower's epoch is older than ours
    UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"  # the follower knows a newer epoch: we are stale
    NOT_LEADER = "NOT_LEADER"
    NOT_REPLICA = "NOT_REPLICA"


@dataclass(frozen=True, slots=True)
class FollowerFetch:
    """One partition of a follower's fetch request."""

    replica_id: int
    leader_epoch: int  # the leader epoch the follower believes current
    fetch_offset: int  # the follower's log end offset
    last_fetched_epoch: int  # epoch of the follower's last batch (-1: empty log)


@dataclass(frozen=True, slots=True)
class FetchCheck:
    verdict: FetchVerdict
    # With DIVERGING: the leader's (epoch, end offset) for the follower's last fetched epoch.
    diverging_epoch: tuple[int, int] | None = None


def check_follower_fetch(
    log: LeaderLogView, leader_epoch: int, replicas: Iterable[int], fetch: FollowerFetch
) -> FetchCheck:
    """Kafka's checks of a follower fetch, in order: epoch fencing (KIP-320), membership,
    divergence by leader epoch (KIP-101/279, as a fetch field since KIP-595), range."""
    if fetch.leader_epoch < leader_epoch:
        return FetchCheck(FetchVerdict.FENCED_LEADER_EPOCH)
    if fetch.leader_epoch > leader_epoch:
        return FetchCheck(FetchVerdict.UNKNOWN_LEADER_EPOCH)
    if fetch.replica_id not in replicas:
        return FetchCheck(FetchVerdict.NOT_REPLICA)
    if fetch.last_fetched_epoch != UNDEFINED_EPOCH:
        epoch, end = log.end_offset_for_epoch(fetch.last_fetched_epoch)
        if epoch < fetch.last_fetched_epoch or end < fetch.fetch_offset:
            return FetchCheck(FetchVerdict.DIVERGING, (epoch, end))
    if not log.log_start_offset <= fetch.fetch_offset <= log.log_end_offset:
        return FetchCheck(FetchVerdict.OFFSET_OUT_OF_RANGE)
    return FetchCheck(FetchVerdict.READ)


class PartitionLeader:
    """Follower progress, the high watermark and ISR decisions of one leader epoch."""

    def __init__(
        self,
        *,
        broker_id: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
        partition_epoch: int,
        epoch_start_offset: int,
        high_watermark: int,
        now_ms: int,
        replica_lag_time_max_ms: int,
    ) -> None:
        self.broker_id = broker_id
        self.replicas = replicas
        self.isr = isr
        self.partition_epoch = partition_epoch
        # The first offset of this leader epoch: a follower must reach it to rejoin the ISR,
        # or it could be in sync while still holding an old leader's divergent tail.
        self.epoch_start_offset = epoch_start_offset
        self.high_watermark = high_watermark
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        # Only one AlterPartition at a time (Kafka's AlterPartitionManager): the ISR asked for.
        self.pending_isr: tuple[int, ...] | None = None
        # False once the pending change failed with its outcome unknown: it goes again.
        self._awaiting_answer = False
        self._retry_at_ms = 0
        self.followers = {r: _new_progress(r in isr, now_ms) for r in replicas if r != broker_id}

    # ---- the ISR ---------------------------------------------------------------------

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The committed ISR plus a pending addition: the high watermark waits for a replica
        as soon as it may join, so joining can never move it backwards."""
        if self.pending_isr is None:
            return self.isr
        added = [r for r in self.pending_isr if r not in self.isr]
        return (*self.isr, *added)

    def committed(
        self, replicas: tuple[int, ...], isr: tuple[int, ...], partition_epoch: int, now_ms: int
    ) -> None:
        """A committed change of this leader epoch (ours or the controller's)."""
        if partition_epoch <= self.partition_epoch:
            return
        for r in replicas:
            if r != self.broker_id and r not in self.followers:
                self.followers[r] = _new_progress(r in isr, now_ms)
        self.replicas = replicas
        self.isr = isr
        self.partition_epoch = partition_epoch
        self.pending_isr = None
        self._awaiting_answer = False

    def isr_change_failed(self, now_ms: int, *, outcome_unknown: bool = False) -> None:
        """The change failed; the leader asks again after ISR_CHANGE_RETRY_BACKOFF_MS, not at
        once. Refused (e.g. the follower is fenced), nothing was committed: the next
        proposal starts afresh. With its outcome unknown (no answer: the controller may
        have committed it all the same), the change stays pending, so the replicas it adds
        keep counting for the high watermark, and the same change goes again (Kafka's
        AlterPartitionManager retries it too) until an answer or a newer committed ISR
        settles it. Dropping it instead let the high watermark pass records that a
        replica the controller had already added lacked; elected, it lost them."""
        if not outcome_unknown:
            self.pending_isr = None
        self._awaiting_answer = False
        self._retry_at_ms = now_ms + ISR_CHANGE_RETRY_BACKOFF_MS

    def is_caught_up(self, follower: FollowerProgress, now_ms: int) -> bool:
        return now_ms - follower.last_caught_up_ms <= self.replica_lag_time_max_ms

    def out_of_sync_replicas(self, now_ms: int) -> list[int]:
        """ISR followers that have not caught up for replica_lag_time_max_ms: whether they
        are dead, partitioned, paused or just slow, the leader cannot wait for them."""
        return [
            r
            for r in self.isr
            if r != self.broker_id and not self.is_caught_up(self.followers[r], now_ms)
        ]

    def replicas_to_add(self) -> list[int]:
        """Followers outside the ISR that reached the high watermark and this epoch's start."""
        out = []
        for r, f in self.followers.items():
            if r in self.maximal_isr:
                continue
            if f.log_end_offset >= max(self.high_watermark, self.epoch_start_offset):
                out.append(r)
        return out

    def isr_change_to_propose(self, now_ms: int) -> tuple[int, ...] | None:
        """The ISR to ask the controller for, or None. Shrinks first (they protect acks=all
        latency and availability), one change at a time; a change whose outcome is unknown
        goes again as it was."""
        if now_ms < self._retry_at_ms or self._awaiting_answer:
            return None
        if self.pending_isr is not None:
            self._awaiting_answer = True
            return self.pending_isr
        out = self.out_of_sync_replicas(now_ms)
        if out:
            proposal = tuple(r for r in self.isr if r not in out)
        else:
            add = self.replicas_to_add()
            if not add:
                return None
            proposal = tuple(r for r in self.replicas if r in self.isr or r in add)
        self.pending_isr = proposal
        self._awaiting_answer = True
        return proposal

    # ---- follower progress and the high watermark ----------------------------------------

    def on_follower_fetch(
        self, replica_id: int, fetch_offset: int, leader_log_end_offset: int, now_ms: int
    ) -> bool:
        """Records a valid fetch (after check_follower_fetch said READ); returns whether the
        high watermark moved."""
        f = self.followers.get(replica_id)
        if f is None:
            return False
        if fetch_offset >= leader_log_end_offset:
            f.last_caught_up_ms = max(f.last_caught_up_ms, now_ms)
        elif fetch_offset >= f.last_fetch_leader_log_end_offset:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.log_end_offset = fetch_offset
        f.last_fetch_ms = now_ms
        f.last_fetch_leader_log_end_offset = leader_log_end_offset
        return self.advance_high_watermark(leader_log_end_offset)

    def advance_high_watermark(self, leader_log_end_offset: int) -> bool:
        """Moves the high watermark to the smallest log end offset of the maximal ISR, never
        backwards; returns whether it moved."""
        candidate = leader_log_end_offset
        for r in self.maximal_isr:
            if r != self.broker_id:
                candidate = min(candidate, self.followers[r].log_end_offset)
        if candidate > self.high_watermark:
            self.high_watermark = candidate
            return True
        return False
