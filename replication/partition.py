"""One partition replica on this broker: its log, its role, and what readers may see.

Owns the rules of the local data path: only the leader appends; readers see records below
the high watermark only; long-polling readers wake when the high watermark moves.

Until follower replication lands no other replica holds data, so a leader's high watermark
is its log end offset and, before its first write, the leader shrinks the ISR to itself
(`isr_before_append`): otherwise the controller could hand leadership to a replica that
lacks acknowledged records, which would hide them and reuse their offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from raftka.metadata.errors import LeaderNotAvailable, NotEnoughReplicas, OffsetOutOfRange
from raftka.storage.errors import OffsetOutOfRangeError, SegmentFullError
from raftka.storage.log import AppendInfo, PartitionLog, ReadResult


@dataclass(frozen=True, slots=True)
class PartitionRole:
    """What the metadata says about this partition, as this broker must act on it."""

    leader: int | None
    leader_epoch: int
    partition_epoch: int
    isr: tuple[int, ...]
    min_insync_replicas: int


class PartitionReplica:
    def __init__(self, topic: str, partition: int, log: PartitionLog, broker_id: int) -> None:
        self.topic = topic
        self.partition = partition
        self.log = log
        self._broker_id = broker_id
        self.role = PartitionRole(
            leader=None, leader_epoch=-1, partition_epoch=-1, isr=(), min_insync_replicas=1
        )
        self._hw_moved = asyncio.Event()
        self._closed = False
        self._isr_change: asyncio.Future[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self.role.leader == self._broker_id

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    def become(self, role: PartitionRole) -> None:
        was_leader = self.is_leader
        self.role = role
        if was_leader != self.is_leader:
            # Long-polls waiting here must re-route (or fail) instead of waiting it out.
            self._wake_readers()

    def isr_before_append(self) -> tuple[int, ...] | None:
        """The ISR to commit before appending, or None when the current one is right.
        Followers do not fetch yet, so any ISR member but the leader would fall behind
        with the first record."""
        mine = (self._broker_id,)
        return None if self.role.isr == mine else mine

    async def change_isr_once(self, change: Callable[[], Awaitable[None]]) -> None:
        """Runs `change` once for all concurrent producers that need the same ISR change."""
        if self._isr_change is None or self._isr_change.done():
            self._isr_change = asyncio.ensure_future(change())
        await asyncio.shield(self._isr_change)

    def check_can_append(self, acks: str) -> None:
        """Raises before anything is written, so a refused request leaves no trace."""
        if not self.is_leader:
            raise LeaderNotAvailable(
                f"broker {self._broker_id} does not lead {self.topic}-{self.partition}"
            )
        if acks == "all" and len(self.role.isr) < self.role.min_insync_replicas:
            raise NotEnoughReplicas(
                f"{self.topic}-{self.partition} has {len(self.role.isr)} in-sync replicas, "
                f"fewer than min_insync_replicas={self.role.min_insync_replicas}"
            )

    def append(self, records: Sequence[tuple[int, bytes]]) -> AppendInfo:
        try:
            info = self.log.append(records, leader_epoch=self.role.leader_epoch)
        except SegmentFullError:
            # roll() fsyncs: it belongs in a worker thread (to come with replication).
            self.log.roll()
            info = self.log.append(records, leader_epoch=self.role.leader_epoch)
        self._wake_readers()
        return info

    def read(self, offset: int, *, max_records: int, max_bytes: int) -> ReadResult:
        hw = self.high_watermark
        if offset > hw:
            raise self._out_of_range(offset)
        try:
            return self.log.read(
                offset, max_bytes=max_bytes, max_records=max_records, max_offset=hw
            )
        except OffsetOutOfRangeError:
            raise self._out_of_range(offset) from None

    async def wait_for_records(self, offset: int, timeout_s: float) -> None:
        """Returns once a record at `offset` is readable, the replica closes or stops
        leading, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._closed and self.is_leader and self.high_watermark <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event = self._hw_moved
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        offset = self.log.offset_for_timestamp(timestamp_ms)
        return offset if offset is not None and offset < self.high_watermark else None

    def _wake_readers(self) -> None:
        # One event per high-watermark move: every waiter wakes, the next ones wait anew.
        event, self._hw_moved = self._hw_moved, asyncio.Event()
        event.set()

    def _out_of_range(self, offset: int) -> OffsetOutOfRange:
        return OffsetOutOfRange(
            f"offset {offset} is outside {self.topic}-{self.partition}'s readable range "
            f"[{self.log_start_offset}, {self.high_watermark}]",
            log_start_offset=self.log_start_offset,
            high_watermark=self.high_watermark,
        )

    def close(self) -> None:
        """Closes the log and wakes every long-polling reader (the topic may be gone)."""
        self._closed = True
        self._wake_readers()
        self.log.close()
