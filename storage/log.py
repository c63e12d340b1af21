"""PartitionLog: one partition's log on disk, the storage API the broker and replication use.

It owns the list of segments, offsets (log_start_offset, log_end_offset), rolling,
reads, truncation, retention, recovery on open and the clean-shutdown marker. It must
never parse a record's JSON on the produce or fetch path, never import raftka's other
packages, and never block on fsync unless asked (sync, roll, truncate, close).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from raftka.storage.batch import (
    HEADER_BYTES,
    BatchHeader,
    build_fragments,
    decode_header,
    encode_batch,
    fragment_timestamp,
    record_ends,
    record_fragments,
    records_fitting,
    slice_bounds,
    verify_batch,
)
from raftka.storage.errors import (
    LogClosedError,
    OffsetOutOfRangeError,
    UnexpectedAppendOffsetError,
)
from raftka.storage.files import TMP_SUFFIX, fsync_dir, write_durably
from raftka.storage.retention import SegmentStats, segments_to_delete
from raftka.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    MAX_SEGMENT_FILE_BYTES,
    TIME_INDEX_SUFFIX,
    Segment,
)

CLEAN_SHUTDOWN_FILE = "clean-shutdown"
LOG_START_OFFSET_FILE = "log-start-offset"
DEFAULT_SEGMENT_BYTES = 1 << 30
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
INDEX_INTERVAL_BYTES = 4096
# A read fetches the file in one pread of about max_bytes, within these bounds.
READ_AHEAD_MIN_BYTES = 16 << 10
READ_AHEAD_MAX_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    retention_ms: int | None = DEFAULT_RETENTION_MS  # None = keep forever
    retention_bytes: int | None = None
    index_interval_bytes: int = INDEX_INTERVAL_BYTES

    def __post_init__(self) -> None:
        if not 0 < self.segment_bytes <= MAX_SEGMENT_FILE_BYTES:
            raise ValueError(f"segment_bytes must be in (0, {MAX_SEGMENT_FILE_BYTES}]")
        if self.retention_ms is not None and self.retention_ms < 0:
            raise ValueError("retention_ms must be >= 0 or None")
        if self.retention_bytes is not None and self.retention_bytes < 0:
            raise ValueError("retention_bytes must be >= 0 or None")
        if self.index_interval_bytes <= 0:
            raise ValueError("index_interval_bytes must be > 0")


@dataclass(frozen=True, slots=True)
class AppendInfo:
    base_offset: int
    last_offset: int
    max_timestamp: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    records_json: bytes  # fragments joined by b",", b"" when none
    record_count: int
    next_offset: int  # offset after the last record returned (== requested offset when none)


def _read_checkpoint(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


class PartitionLog:
    """An append-only sequence of record batches split into segments."""

    def __init__(self, directory: Path, config: LogConfig, segments: list[Segment]) -> None:
        self._directory = directory
        self._config = config
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._log_start_offset = segments[0].base_offset
        # Guards the segment list and file descriptors against sync() in a worker thread.
        self._lock = threading.Lock()
        self._closed = False

    # ---- opening and recovery --------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig) -> PartitionLog:
        """Open the log in `directory`, creating it, or recovering it after a crash."""
        directory.mkdir(parents=True, exist_ok=True)
        clean = (directory / CLEAN_SHUTDOWN_FILE).exists()
        for tmp in directory.glob("*" + TMP_SUFFIX):
            tmp.unlink()
        bases = sorted(int(p.stem) for p in directory.glob("*" + LOG_SUFFIX) if p.stem.isdigit())
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            for orphan in directory.glob("*" + suffix):
                if not orphan.with_suffix(LOG_SUFFIX).exists():
                    orphan.unlink()
        checkpoint = _read_checkpoint(directory / LOG_START_OFFSET_FILE)
        interval = config.index_interval_bytes
        segments: list[Segment] = []
        for k, base in enumerate(bases):
            is_last = k == len(bases) - 1
            # Older segments were fsynced (with their indexes) when the log rolled past them.
            seg, cut_bytes = Segment.open(
                directory, base, interval, trust_indexes=clean or not is_last
            )
            if segments and seg.base_offset != segments[-1].next_offset:
                # A gap or overlap: nothing from here on can be served in order.
                seg.delete_files()
                for later in reversed(bases[k + 1 :]):
                    Segment(directory, later, interval).delete_files()
                break
            segments.append(seg)
            if cut_bytes and not is_last:
                for later in reversed(bases[k + 1 :]):
                    Segment(directory, later, interval).delete_files()
                break
        if not segments:
            segments.append(Segment.create(directory, checkpoint or 0, interval))
        # What recovery kept may never have been fsynced (a killed process leaves it in
        # the page cache): make it durable before anything is appended after it.
        os.fsync(segments[-1].fd)
        log = cls(directory, config, segments)
        end = log.log_end_offset
        log._log_start_offset = min(max(checkpoint or 0, segments[0].base_offset), end)
        # From here on the files change, so a crash must not find a stale marker.
        with contextlib.suppress(FileNotFoundError):
            (directory / CLEAN_SHUTDOWN_FILE).unlink()
        fsync_dir(directory)
        return log

    # ---- offsets ---------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def directory(self) -> Path:
        return self._directory

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self._directory} is closed")

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
        """Append (timestamp_ms, body) records as one batch; offsets are assigned here."""
        if not records:
            raise ValueError("append needs at least one record")
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
        return self._append_batch(batch, decode_header(batch, 0, verify_crc=False))

    def append_raw(self, batch: bytes) -> AppendInfo:
        """Append one encoded batch copied from a leader, after checking its CRC and offset."""
        self._check_open()
        header = verify_batch(batch)
        if header.base_offset != self.log_end_offset:
            raise UnexpectedAppendOffsetError(header.base_offset, self.log_end_offset)
        return self._append_batch(batch, header)

    def _append_batch(self, batch: bytes, header: BatchHeader) -> AppendInfo:
        with self._lock:
            if not self._segments[-1].fits(header, self._config.segment_bytes):
                self._roll(header.base_offset)
            self._segments[-1].append(batch, header)
        return AppendInfo(header.base_offset, header.last_offset, header.max_timestamp)

    def _roll(self, base_offset: int) -> None:
        # Older segments are always durable, so recovery only ever scans the last one.
        self._segments[-1].sync_all()
        segment = Segment.create(self._directory, base_offset, self._config.index_interval_bytes)
        fsync_dir(self._directory)
        self._segments.append(segment)
        self._bases.append(base_offset)

    # ---- reading ---------------------------------------------------------------------

    def read(
        self, offset: int, *, max_bytes: int, max_records: int, max_offset: int | None = None
    ) -> ReadResult:
        """Records with offsets in [offset, max_offset), as JSON fragments joined by b",".

        At most max_records and max_bytes, except that the first readable record is
        always returned so a consumer makes progress. No JSON is parsed: the bytes
        are sliced from the batches as stored.
        """
        self._check_open()
        end = self.log_end_offset
        if offset < self._log_start_offset or offset > end:
            raise self._out_of_range(offset)
        limit = end if max_offset is None else min(max_offset, end)
        if offset >= limit or max_records <= 0:
            return ReadResult(b"", 0, offset)
        read_ahead = min(
            max(max_bytes + max_bytes // 8, READ_AHEAD_MIN_BYTES), READ_AHEAD_MAX_BYTES
        )
        pieces: list[memoryview] = []
        taken_bytes = 0
        count = 0
        next_offset = offset
        first = bisect_right(self._bases, offset) - 1
        for segment in self._segments[first:]:
            for _pos, header, view in segment.batches_from(next_offset, read_ahead):
                if header.base_offset >= limit:
                    break
                i = next_offset - header.base_offset
                j = min(header.record_count, limit - header.base_offset, i + max_records - count)
                comma = 1 if pieces else 0
                budget = max_bytes - taken_bytes - comma
                start = header.payload_start
                if i == 0 and j == header.record_count and header.payload_bytes <= budget:
                    piece = view[start:]  # the common case: a whole batch, no table lookup
                else:
                    ends = record_ends(view, header)
                    j = min(j, records_fitting(ends, i, budget))
                    if j == i:
                        if pieces:
                            break
                        j = i + 1  # progress: the first record goes even if it is too big
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
                    break  # a limit cut this batch short, or the byte budget is spent
            else:
                continue  # this segment is exhausted; go on with the next
            break
        return ReadResult(b",".join(pieces), count, next_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """First offset whose record timestamp is >= timestamp_ms, or None."""
        self._check_open()
        for segment in self._segments:
            if segment.max_timestamp < timestamp_ms:
                continue
            base = segment.time_index.lookup(timestamp_ms)
            if base is None:
                continue
            for _pos, header, view in segment.batches_from(base, HEADER_BYTES):
                if header.max_timestamp < timestamp_ms:
                    continue
                for k, fragment in enumerate(record_fragments(view)):
                    offset = header.base_offset + k
                    if (
                        offset >= self._log_start_offset
                        and fragment_timestamp(fragment) >= timestamp_ms
                    ):
                        return offset
        return None

    def batches(self, from_offset: int = 0) -> Iterator[BatchHeader]:
        """Headers of the batches holding offsets >= from_offset, in order.

        Do not append, truncate or apply retention while iterating.
        """
        self._check_open()
        first = max(bisect_right(self._bases, from_offset) - 1, 0)
        for segment in list(self._segments[first:]):
            for _pos, header, _view in segment.batches_from(from_offset, HEADER_BYTES):
                yield header

    # ---- truncation and retention ----------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= offset; returns the new log_end_offset.

        Only at batch boundaries (Kafka's rule): the batch holding `offset` goes whole,
        so the new log_end_offset is its base offset, which may be below `offset`. Kept
        bytes are never rewritten (segments are deleted, the last one is cut with
        ftruncate), and the result is durable on return. `offset >= log_end_offset`
        changes nothing; `offset < log_start_offset` raises OffsetOutOfRangeError.
        """
        self._check_open()
        if offset >= self.log_end_offset:
            return self.log_end_offset
        if offset < self._log_start_offset:
            raise self._out_of_range(offset)
        with self._lock:
            while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                self._segments.pop().delete_files()
                self._bases.pop()
            active = self._segments[-1]
            active.truncate_to(offset)
            # log_start_offset is a segment's base, so a batch boundary, and the cut never
            # goes below it; were it ever inside a batch, it follows the cut (as on open).
            self._log_start_offset = min(self._log_start_offset, active.next_offset)
            active.sync_all()
            fsync_dir(self._directory)
            return active.next_offset

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every record; the log restarts empty with log_start_offset = offset."""
        self._check_open()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        with self._lock:
            while self._segments:
                self._segments.pop().delete_files()
            segment = Segment.create(self._directory, offset, self._config.index_interval_bytes)
            self._segments.append(segment)
            self._bases = [offset]
            self._log_start_offset = offset
            write_durably(self._directory / LOG_START_OFFSET_FILE, b"%d\n" % offset)

    def apply_retention(self, now_ms: int) -> int:
        """Delete whole old segments per retention_ms and retention_bytes; returns how many."""
        self._check_open()
        count = segments_to_delete(
            [SegmentStats(s.size, s.max_timestamp) for s in self._segments],
            now_ms=now_ms,
            retention_ms=self._config.retention_ms,
            retention_bytes=self._config.retention_bytes,
        )
        if not count:
            return 0
        with self._lock:
            for segment in self._segments[:count]:
                segment.delete_files()
            del self._segments[:count]
            del self._bases[:count]
            self._log_start_offset = max(self._log_start_offset, self._segments[0].base_offset)
        write_durably(self._directory / LOG_START_OFFSET_FILE, b"%d\n" % self._log_start_offset)
        return count

    # ---- durability and shutdown -----------------------------------------------------

    def sync(self) -> None:
        """fsync everything appended so far. Safe from a worker thread.

        Only the active segment can hold unsynced data (rolls fsync the old one). The
        fd is duplicated under the lock, so a roll or close on the loop thread never
        closes the descriptor this fsync is using, and appends are not held up by it.
        """
        with self._lock:
            self._check_open()
            fd = os.dup(self._segments[-1].fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Write the indexes, fsync, and leave a clean-shutdown marker."""
        with self._lock:
            if self._closed:
                return
            self._segments[-1].sync_all()
            for segment in self._segments:
                segment.close()
            self._closed = True
            write_durably(self._directory / CLEAN_SHUTDOWN_FILE, b"")

    def abandon(self) -> None:
        """Close the file descriptors without flushing or marking a clean shutdown.

        What a killed process leaves behind; tests use it to simulate crashes.
        """
        with self._lock:
            for segment in self._segments:
                segment.close()
            self._closed = True

    def delete(self) -> None:
        """Close the log and remove its directory."""
        self.abandon()
        shutil.rmtree(self._directory, ignore_errors=True)
