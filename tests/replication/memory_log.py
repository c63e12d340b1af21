"""MemoryLog: the part of `storage.log.PartitionLog` that replication uses, held in memory.

For the deterministic simulation (test_simulation.py): no files, no threads, and a crash
that loses what was never fsynced. It is thin on purpose so that it cannot drift from the
real log: batches are encoded, verified and split by `storage.batch`, epochs are kept by
`storage.epochs.LeaderEpochCache` with the same calls `PartitionLog` makes, and `read`
slices batches the way `PartitionLog._read` does. test_memory_log.py runs the same
operations on both and compares every answer.

Durability is a count: the first `synced_batches` batches are on "disk". `sync()` and the
truncations (durable on return in the real log) make every batch durable; `crash()` keeps
the durable batches plus a prefix of the others (a torn tail is cut at a batch boundary by
recovery) and rebuilds the epoch cache from their headers, as recovery does.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from pathlib import Path

from raftka.storage.batch import (
    BatchHeader,
    build_fragments,
    encode_batch,
    fragment_timestamp,
    record_ends,
    record_fragments,
    records_fitting,
    slice_bounds,
    verify_batch,
)
from raftka.storage.epochs import EpochEntry, LeaderEpochCache
from raftka.storage.errors import (
    LogClosedError,
    OffsetOutOfRangeError,
    UnexpectedAppendOffsetError,
)
from raftka.storage.log import AppendInfo, ReadResult, check_copied_batches


class MemoryLog:
    def __init__(self, name: str = "memory", *, log_start_offset: int = 0) -> None:
        self._directory = Path("/nonexistent-memory-logs") / name
        self._name = name
        self._batches: list[tuple[BatchHeader, bytes]] = []
        self._bases: list[int] = []
        self._log_start_offset = log_start_offset
        self._epochs = LeaderEpochCache()
        self._closed = False
        self.synced_batches = 0

    # ---- offsets ---------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._batches[-1][0].next_offset if self._batches else self._log_start_offset

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def unsynced_batches(self) -> int:
        return len(self._batches) - self.synced_batches

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self._name} is closed")

    def _out_of_range(self, offset: int) -> OffsetOutOfRangeError:
        return OffsetOutOfRangeError(offset, self._log_start_offset, self.log_end_offset)

    # ---- appending -------------------------------------------------------------------

    def append(
        self,
        records: Sequence[tuple[int, bytes]],
        *,
        leader_epoch: int = 0,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
    ) -> AppendInfo:
        if not records:
            raise ValueError("append needs at least one record")
        if leader_epoch < 0:
            raise ValueError(f"leader_epoch must be >= 0, got {leader_epoch}")
        self._check_open()
        base = self.log_end_offset
        batch = encode_batch(
            base,
            build_fragments(base, records),
            first_timestamp=records[0][0],
            max_timestamp=max(ts for ts, _ in records),
            leader_epoch=leader_epoch,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
        )
        return self._append_batch(batch, verify_batch(batch))

    def append_batches(self, data: bytes | memoryview, headers: Sequence[BatchHeader]) -> int:
        """Takes every batch: one segment holds everything."""
        self._check_open()
        check_copied_batches(data, headers)
        position = 0
        for header in headers:
            self._append_batch(bytes(data[position : position + header.size_bytes]), header)
            position += header.size_bytes
        return len(headers)

    def _append_batch(self, batch: bytes, header: BatchHeader) -> AppendInfo:
        if header.base_offset != self.log_end_offset:
            raise UnexpectedAppendOffsetError(header.base_offset, self.log_end_offset)
        self._batches.append((header, batch))
        self._bases.append(header.base_offset)
        if header.leader_epoch > self._epochs.latest_epoch:
            self._epochs.assign(header.leader_epoch, header.base_offset)
        return AppendInfo(header.base_offset, header.last_offset, header.max_timestamp)

    def roll(self) -> None:
        """One segment holds everything: never full, nothing to roll."""
        self._check_open()

    # ---- leader epochs ---------------------------------------------------------------

    @property
    def latest_epoch(self) -> int:
        return self._epochs.latest_epoch

    def epoch_entries(self) -> tuple[EpochEntry, ...]:
        return self._epochs.entries()

    def assign_epoch(self, epoch: int, start_offset: int) -> bool:
        self._check_open()
        if not self._log_start_offset <= start_offset <= self.log_end_offset:
            raise self._out_of_range(start_offset)
        return self._epochs.assign(epoch, start_offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        self._check_open()
        return self._epochs.end_offset_for(epoch, self.log_end_offset)

    # ---- reading ---------------------------------------------------------------------

    def _from(self, offset: int) -> Iterator[tuple[BatchHeader, bytes]]:
        """Batches whose last offset is >= offset, in order."""
        first = max(bisect_right(self._bases, offset) - 1, 0)
        for header, batch in self._batches[first:]:
            if header.last_offset >= offset:
                yield header, batch

    def read(
        self, offset: int, *, max_bytes: int, max_records: int, max_offset: int | None = None
    ) -> ReadResult:
        """PartitionLog._read's slicing, over one in-memory segment."""
        self._check_open()
        end = self.log_end_offset
        if offset < self._log_start_offset or offset > end:
            raise self._out_of_range(offset)
        limit = end if max_offset is None else min(max_offset, end)
        if offset >= limit or max_records <= 0:
            return ReadResult(b"", 0, offset)
        pieces: list[memoryview] = []
        taken_bytes = 0
        count = 0
        next_offset = offset
        for header, batch in self._from(next_offset):
            view = memoryview(batch)
            if header.base_offset >= limit:
                break
            i = next_offset - header.base_offset
            j = min(header.record_count, limit - header.base_offset, i + max_records - count)
            comma = 1 if pieces else 0
            budget = max_bytes - taken_bytes - comma
            start = header.payload_start
            if i == 0 and j == header.record_count and header.payload_bytes <= budget:
                piece = view[start:]
            else:
                ends = record_ends(view, header)
                j = min(j, records_fitting(ends, i, budget))
                if j == i:
                    if pieces:
                        break
                    j = i + 1
                lo, hi = slice_bounds(ends, i, j)
                piece = view[start + lo : start + hi]
            pieces.append(piece)
            taken_bytes += comma + len(piece)
            count += j - i
            next_offset = header.base_offset + j
            if (
                next_offset < header.next_offset
                or next_offset >= limit
                or count >= max_records
                or taken_bytes >= max_bytes
            ):
                break
        return ReadResult(b",".join(pieces), count, next_offset)

    def read_raw(self, offset: int, max_bytes: int) -> bytes:
        """Whole stored batches from the one holding `offset`, as Segment.read_batches takes
        them: the first always, then more while the total stays within max_bytes."""
        self._check_open()
        if not self._log_start_offset <= offset <= self.log_end_offset:
            raise self._out_of_range(offset)
        pieces: list[bytes] = []
        taken = 0
        for _header, batch in self._from(offset):
            if pieces and taken + len(batch) > max_bytes:
                break
            pieces.append(batch)
            taken += len(batch)
            if taken >= max_bytes:
                break
        return b"".join(pieces)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        self._check_open()
        for header, batch in self._batches:
            if header.max_timestamp < timestamp_ms:
                continue
            for k, fragment in enumerate(record_fragments(batch)):
                offset = header.base_offset + k
                if (
                    offset >= self._log_start_offset
                    and fragment_timestamp(fragment) >= timestamp_ms
                ):
                    return offset
        return None

    def batches(self, from_offset: int = 0) -> Iterator[BatchHeader]:
        self._check_open()
        for header, _batch in list(self._from(from_offset)):
            yield header

    def stored_batches(self) -> list[tuple[BatchHeader, bytes]]:
        """Every batch with its bytes (for the simulation's checks)."""
        return list(self._batches)

    # ---- truncation ------------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Removes every batch whose last offset is >= offset; durable on return. At or past
        the end it removes no batch but the epochs starting at the end."""
        self._check_open()
        end = self.log_end_offset
        if offset >= end:
            self._epochs.truncate_from_end(end)
            return end
        if offset < self._log_start_offset:
            raise self._out_of_range(offset)
        while self._batches and self._batches[-1][0].last_offset >= offset:
            self._batches.pop()
            self._bases.pop()
        end = self.log_end_offset
        self._log_start_offset = min(self._log_start_offset, end)
        self._epochs.truncate_from_end(end)
        self.synced_batches = len(self._batches)
        return end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        if offset < 0:
            raise ValueError("offset must be >= 0")
        self._check_open()
        self._batches.clear()
        self._bases.clear()
        self._log_start_offset = offset
        self._epochs.clear()
        self.synced_batches = 0

    # ---- durability ------------------------------------------------------------------

    def sync(self) -> None:
        self._check_open()
        self.synced_batches = len(self._batches)

    def close(self) -> None:
        if not self._closed:
            self.synced_batches = len(self._batches)
            self._closed = True

    def crash(self, keep_unsynced: int | None = 0) -> MemoryLog:
        """The log as recovery finds it after a crash: the durable batches plus the first
        `keep_unsynced` others (None: all of them, as after a killed process whose page
        cache survived). This object is closed; the returned one is the reopened log."""
        self._closed = True
        kept = len(self._batches) if keep_unsynced is None else self.synced_batches + keep_unsynced
        reopened = MemoryLog(self._name, log_start_offset=self._log_start_offset)
        for header, batch in self._batches[:kept]:
            reopened._batches.append((header, batch))
            reopened._bases.append(header.base_offset)
            reopened._epochs.assign(header.leader_epoch, header.base_offset)
        reopened._epochs.truncate_from_start(reopened._log_start_offset)
        reopened.synced_batches = len(reopened._batches)
        return reopened
