"""The follower's rules for one partition: what to do with the leader's answer to a fetch.

Pure: it reads the local log through `FollowerLogView` and returns one step (append, truncate,
start over, back off); the caller does the I/O. The rules are Kafka's
(AbstractFetcherThread): a follower finds where its log diverges from the leader's by
leader epoch, never by the high watermark alone (KIP-101: truncating to the high watermark
loses acknowledged records when leaders change twice quickly, and can leave replicas with
different records at one offset), and refines the point over several fetches when it
does not know the epoch the leader answered with (KIP-279).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from raftka.replication.leader import UNDEFINED_EPOCH, FetchVerdict


class FollowerLogView(Protocol):
    @property
    def log_end_offset(self) -> int: ...

    @property
    def latest_epoch(self) -> int: ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class FetchAnswer:
    """The leader's answer for one partition (see replication/protocol.py for the wire form)."""

    verdict: FetchVerdict
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    diverging_epoch: tuple[int, int] | None
    records: bytes | memoryview  # whole batches, as the leader stored them


@dataclass(frozen=True, slots=True)
class Append:
    """Append the leader's batches, then take its high watermark (bounded by our end)."""

    records: bytes | memoryview
    high_watermark: int


@dataclass(frozen=True, slots=True)
class TruncateTo:
    """Remove every record at or after `offset` (the log may end lower, at a batch start)."""

    offset: int


@dataclass(frozen=True, slots=True)
class StartAt:
    """Drop the whole log and continue from `offset` (we fell below the leader's log start)."""

    offset: int


@dataclass(frozen=True, slots=True)
class Backoff:
    """Nothing to do now: the metadata has to catch up (epochs differ, not the leader)."""

    reason: str


FollowerStep = Append | TruncateTo | StartAt | Backoff


def truncation_offset(log: FollowerLogView, diverging_epoch: tuple[int, int]) -> int | None:
    """Where to truncate, given the leader's (epoch, end offset) for our last fetched epoch
    (Kafka's getOffsetTruncationState, on the fetch-integrated form of the exchange), or
    None when the answer says nothing safe to act on."""
    leader_epoch, leader_end = diverging_epoch
    local_end = log.log_end_offset
    if leader_end < 0:
        # Our epoch is newer than any the leader knows: the leader is the stale one. Kafka
        # falls back to the high watermark here; waiting for the metadata is safer.
        return None
    our_epoch, our_end = log.end_offset_for_epoch(leader_epoch)
    if our_epoch == UNDEFINED_EPOCH:
        # Our epoch cache is empty (so is our log past its start): nothing of ours to keep
        # beyond the leader's end.
        return min(leader_end, local_end)
    if our_epoch != leader_epoch:
        # We never had the leader's epoch: cut to the end of our last epoch below it; the
        # next fetch carries that epoch and the leader answers again (KIP-279).
        return min(our_end, local_end)
    return min(our_end, leader_end, local_end)


def plan_after_fetch(log: FollowerLogView, fetch_offset: int, answer: FetchAnswer) -> FollowerStep:
    verdict = answer.verdict
    if verdict is FetchVerdict.READ:
        return Append(answer.records, answer.high_watermark)
    if verdict is FetchVerdict.DIVERGING:
        assert answer.diverging_epoch is not None
        offset = truncation_offset(log, answer.diverging_epoch)
        if offset is None:
            return Backoff("the leader does not know our last epoch")
        if offset >= log.log_end_offset:
            if answer.diverging_epoch[0] < log.latest_epoch:
                # Our epochs after the leader's start at our log end, with no batch in
                # them: one we announced as leader and lost before writing in it. Cutting
                # at the log end drops them, and the next fetch names the epoch below
                # (Kafka's truncateTo at the log end does the same).
                return TruncateTo(log.log_end_offset)
            # Nothing to cut, yet the leader says we diverge: our epoch history and log
            # disagree. Retrying at once would spin; wait for the metadata instead.
            return Backoff(f"divergence at {answer.diverging_epoch} needs no truncation")
        return TruncateTo(offset)
    if verdict is FetchVerdict.OFFSET_OUT_OF_RANGE:
        if fetch_offset < answer.log_start_offset:
            # Retention removed what we need on the leader: start again where it starts.
            return StartAt(answer.log_start_offset)
        if fetch_offset > answer.log_end_offset:
            # Only reachable without epoch history (an empty epoch cache): Kafka truncates
            # to the leader's end; anything past it was never acknowledged by the ISR.
            return TruncateTo(answer.log_end_offset)
        return Backoff("offset moved into range meanwhile")
    return Backoff(verdict.value)
