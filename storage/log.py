"""PartitionLog: one partition's log on disk, the storage API the broker and replication use.

It owns the list of segments, offsets (log_start_offset, log_end_offset), rolling,
reads, truncation, retention, recovery on open, the clean-shutdown marker, and when the
leader-epoch cache is kept up to date and checkpointed (epochs.py owns its rules). It must
never parse a record's JSON on the produce or fetch path, never import raftka's other
packages, and never fsync in a method meant for the event loop: appends, reads and the
first step of retention never touch the disk's durability; sync, roll, truncation,
segment deletion, open and close do, and their callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from operator import itemgetter
from pathlib import Path

from raftka.storage.batch import (
    HEADER_BYTES,
    BatchHeader,
    JsonRecords,
    Records,
    build_fragments,
    decode_header,
    encode_batch,
    fragment_timestamp,
    record_ends,
    record_fragments,
    records_fitting,
    slice_bounds,
)
from raftka.storage.disk import DISK_FULL_ERRNOS
from raftka.storage.epochs import EpochEntry, LeaderEpochCache
from raftka.storage.errors import (
    CorruptCheckpointError,
    LogClosedError,
    OffsetOutOfRangeError,
    SegmentFullError,
    UnexpectedAppendOffsetError,
)
from raftka.storage.file_pool import OpenFilePool
from raftka.storage.files import TMP_SUFFIX, create_marker, fsync_dir, write_durably
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
LEADER_EPOCH_CHECKPOINT_FILE = "leader-epoch-checkpoint"
DEFAULT_SEGMENT_BYTES = 1 << 30
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
INDEX_INTERVAL_BYTES = 4096
# A read fetches the file in one pread of about max_bytes, within these bounds.
READ_AHEAD_MIN_BYTES = 16 << 10
READ_AHEAD_MAX_BYTES = 8 << 20
# What a missing leader-epoch checkpoint means: no epochs (a new log writes no file).
EMPTY_EPOCHS_TEXT = LeaderEpochCache().to_text()


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


def _read_ahead_bytes(max_bytes: int) -> int:
    # A little more than max_bytes: the read starts at an index entry before the offset.
    return min(max(max_bytes + max_bytes // 8, READ_AHEAD_MIN_BYTES), READ_AHEAD_MAX_BYTES)


def _read_checkpoint(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _assign_from_headers(cache: LeaderEpochCache, segments: Sequence[Segment]) -> None:
    """Add the epochs the segments' batch headers show (reads headers only; for open)."""
    for segment in segments:
        for _pos, header in segment.headers_from(segment.base_offset):
            cache.assign(header.leader_epoch, header.base_offset)


def _recover_epochs(
    directory: Path, segments: Sequence[Segment], *, clean: bool, start: int, end: int
) -> tuple[LeaderEpochCache, str | None]:
    """The leader-epoch cache after open, and the text the file holds (EMPTY_EPOCHS_TEXT
    when there is none, None when it is unreadable).

    The file covers every epoch that starts below the last segment's base (roll writes
    it before creating a segment), so after an unclean stop only the last segment's
    epochs are rebuilt from batch headers. A missing or malformed file, or one that
    does not reach down to the log start (segments a crash brought back before
    retention deleted them), means a rebuild from every segment's headers.
    """
    path = directory / LEADER_EPOCH_CHECKPOINT_FILE
    text: str | None
    on_disk: str | None
    try:
        text = on_disk = path.read_text()
        cache = LeaderEpochCache.from_text(text)
    except (FileNotFoundError, UnicodeDecodeError, CorruptCheckpointError) as exc:
        on_disk = EMPTY_EPOCHS_TEXT if isinstance(exc, FileNotFoundError) else None
        text, cache = None, LeaderEpochCache()
        _assign_from_headers(cache, segments)
    else:
        if not clean:
            cache.truncate_from_end(segments[-1].base_offset)
            _assign_from_headers(cache, segments[-1:])
    cache.truncate_from_end(end)
    cache.truncate_from_start(start)
    entries = cache.entries()
    if text is not None and start < end and (not entries or entries[0].start_offset > start):
        cache = LeaderEpochCache()
        _assign_from_headers(cache, segments)
        cache.truncate_from_start(start)
    return cache, on_disk


def check_copied_batches(data: bytes | memoryview, headers: Sequence[BatchHeader]) -> None:
    """What `append_batches` asks of batches copied from a leader, before it writes any:
    at least one, `data` exactly their bytes, each following the one before, each with a
    leader epoch."""
    if not headers:
        raise ValueError("append_batches needs at least one batch")
    if sum(h.size_bytes for h in headers) != len(data):
        raise ValueError("the batches' sizes do not add up to the data")
    for before, header in pairwise(headers):
        if header.base_offset != before.next_offset:
            raise UnexpectedAppendOffsetError(header.base_offset, before.next_offset)
    for header in headers:
        if header.leader_epoch < 0:
            raise ValueError(f"batch at {header.base_offset} has no leader epoch")


class PartitionLog:
    """An append-only sequence of record batches split into segments.

    Two kinds of callers share it. The event loop appends, reads, detaches expired
    segments and asks about epochs: those methods never fsync and only take `_lock`,
    which nothing holds across an fsync. Worker threads run what fsyncs: open, then
    sync, roll, truncate_to, truncate_fully_and_start_at, delete_segments and close,
    which take `_worker_lock` first, so they run one at a time and each finds the files
    as the previous one left them, and take `_lock` only for the in-memory changes and
    for cheap file operations (create, unlink, ftruncate).
    """

    def __init__(
        self, directory: Path, config: LogConfig, segments: list[Segment], pool: OpenFilePool
    ) -> None:
        self._directory = directory
        self._config = config
        self._pool = pool  # the broker's open segment files (file_pool.py)
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._log_start_offset = segments[0].base_offset
        # Guards the segment list, offsets and file descriptors; held only briefly.
        self._lock = threading.Lock()
        # Serializes the worker-thread operations; held across their fsyncs.
        self._worker_lock = threading.Lock()
        # While a roll runs, appends are refused: the segment it fsyncs must not grow.
        self._rolling = False
        self._closed = False
        # In memory the cache is authoritative; worker-thread operations rewrite the
        # checkpoint file when what it should hold (the entries below the log end) is not
        # what it holds. Its text (EMPTY_EPOCHS_TEXT when there is no file, None when
        # unknown); changed under _worker_lock.
        self._epochs = LeaderEpochCache()
        self._epochs_on_disk: str | None = EMPTY_EPOCHS_TEXT

    # ---- opening and recovery --------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, config: LogConfig, pool: OpenFilePool | None = None
    ) -> PartitionLog:
        """Open the log in `directory`, creating it, or recovering it after a crash.

        Reads, verifies and fsyncs files: callers run it in a worker thread. Its segment
        files are opened through `pool` (a pool of its own, unbounded, when None), which
        may close them again once the log is open: later uses reopen them.
        """
        pool = pool or OpenFilePool()
        directory.mkdir(parents=True, exist_ok=True)
        names = os.listdir(directory)  # once: a broker opens thousands of logs at start
        clean = CLEAN_SHUTDOWN_FILE in names
        stems = {n.removesuffix(LOG_SUFFIX) for n in names if n.endswith(LOG_SUFFIX)}
        bases = sorted(int(stem) for stem in stems if stem.isdigit())
        for name in names:
            orphan = any(
                name.endswith(suffix) and name.removesuffix(suffix) not in stems
                for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX)
            )
            if orphan or name.endswith(TMP_SUFFIX):
                (directory / name).unlink()
        checkpoint = _read_checkpoint(directory / LOG_START_OFFSET_FILE)
        interval = config.index_interval_bytes
        segments: list[Segment] = []
        for k, base in enumerate(bases):
            is_last = k == len(bases) - 1
            # Older segments were fsynced (with their indexes) when the log rolled past them.
            seg, cut_bytes = Segment.open(
                directory, base, interval, trust_indexes=clean or not is_last, pool=pool
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
            segments.append(Segment.create(directory, checkpoint or 0, interval, pool))
        if not clean:
            # What recovery kept may never have been fsynced (a killed process leaves it
            # in the page cache): make it durable before anything is appended after it.
            # A clean close fsynced it before leaving its marker.
            segments[-1].fsync()
        log = cls(directory, config, segments, pool)
        end = log.log_end_offset
        log._log_start_offset = start = min(max(checkpoint or 0, segments[0].base_offset), end)
        log._epochs, log._epochs_on_disk = _recover_epochs(
            directory, segments, clean=clean, start=start, end=end
        )
        # From here on the files change, so a crash must not find a stale marker.
        with contextlib.suppress(FileNotFoundError):
            (directory / CLEAN_SHUTDOWN_FILE).unlink()
        fsync_dir(directory)
        return log

    @classmethod
    def create(
        cls, directory: Path, config: LogConfig, pool: OpenFilePool | None = None
    ) -> PartitionLog:
        """A new empty log in `directory`, a folder the caller has just created, empty.

        It creates one file, the first segment, and fsyncs nothing: the caller makes the
        folder's entries durable (fsync_dir of the folder, then of its parent) before
        anything is appended, and may overlap and share those fsyncs over many new logs.
        An empty log needs no other file: a missing leader-epoch or log-start-offset
        checkpoint, or index, reads as empty. Blocks on the disk: a worker thread's job.
        """
        pool = pool or OpenFilePool()
        segment = Segment.create(directory, 0, config.index_interval_bytes, pool)
        return cls(directory, config, [segment], pool)

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
        records: Records,
        *,
        leader_epoch: int = 0,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
    ) -> AppendInfo:
        """Append (timestamp_ms, body) records, or JsonRecords, as one batch; offsets
        are assigned here.

        Never waits for the disk, so it may run on the event loop. When the active
        segment cannot take the batch it raises SegmentFullError having written
        nothing: the caller runs roll() in a worker thread and appends again.
        """
        if not records:
            raise ValueError("append needs at least one record")
        if leader_epoch < 0:
            raise ValueError(f"leader_epoch must be >= 0, got {leader_epoch}")
        self._check_open()
        base = self.log_end_offset
        if isinstance(records, JsonRecords):
            content: Sequence[bytes] | JsonRecords = records
            first_timestamp = max_timestamp = records.timestamp
        else:
            content = build_fragments(base, records)
            first_timestamp = records[0][0]
            max_timestamp = max(map(itemgetter(0), records))
        batch = encode_batch(
            base,
            content,
            first_timestamp=first_timestamp,
            max_timestamp=max_timestamp,
            leader_epoch=leader_epoch,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
        )
        header = decode_header(batch, 0, verify_crc=False)
        self._append_batches(batch, (header,))
        return AppendInfo(header.base_offset, header.last_offset, header.max_timestamp)

    def append_batches(self, data: bytes | memoryview, headers: Sequence[BatchHeader]) -> int:
        """Append batches copied from a leader: `data` holds them back to back, `headers`
        are their headers as `split_batches` returned them, having checked every CRC (a
        follower checks a whole fetched answer before it acts on any of it). As many as
        the active segment takes go in with one write; returns how many, so the caller
        rolls and appends the rest.

        Like append: never waits for the disk, raises SegmentFullError when not even the
        first batch fits.
        """
        self._check_open()
        check_copied_batches(data, headers)
        return self._append_batches(data, headers)

    def _append_batches(self, data: bytes | memoryview, headers: Sequence[BatchHeader]) -> int:
        with self._lock:
            self._check_open()
            active = self._segments[-1]
            first = headers[0]
            if first.base_offset != active.next_offset:
                raise UnexpectedAppendOffsetError(first.base_offset, active.next_offset)
            taken = (
                0 if self._rolling else active.count_fitting(headers, self._config.segment_bytes)
            )
            if taken == 0:
                raise SegmentFullError(
                    f"segment {active.base_offset} of {self._directory} cannot take "
                    f"{first.size_bytes} more bytes; roll() and append again"
                )
            run = headers[:taken]
            active.append(memoryview(data)[: sum(h.size_bytes for h in run)], run)
            for header in run:
                if header.leader_epoch > self._epochs.latest_epoch:
                    self._epochs.assign(header.leader_epoch, header.base_offset)
        return taken

    def roll(self) -> None:
        """Start a new active segment at the log end offset. Run it in a worker thread.

        The active segment is sealed first (appends raise SegmentFullError until the
        roll is done), its index files are written and all three files fsynced, the
        leader-epoch checkpoint is written, then the new segment is created and the
        directory fsynced. So every segment but the last is durable with its indexes,
        the checkpoint covers every epoch that starts below the last segment's base,
        and recovery only scans the last one. The event loop is never held up: `_lock`
        is not held across the fsyncs. Rolling an empty active segment does nothing
        (several callers may ask for one roll).
        """
        with self._worker_lock:
            with self._lock:
                self._check_open()
                old = self._segments[-1]
                if old.is_empty():
                    return
                self._rolling = True
            new: Segment | None = None
            try:
                old.sync_all()
                # Before the new segment exists, so open never finds a segment beyond
                # the last one whose epochs the file covers.
                self._write_epochs_if_changed()
                new = Segment.create(
                    self._directory,
                    old.next_offset,
                    self._config.index_interval_bytes,
                    self._pool,
                )
                fsync_dir(self._directory)
            except BaseException:
                if new is not None:
                    new.close()
                with self._lock:
                    self._rolling = False
                raise
            with self._lock:
                self._segments.append(new)
                self._bases.append(new.base_offset)
                self._rolling = False

    # ---- leader epochs ---------------------------------------------------------------

    @property
    def latest_epoch(self) -> int:
        """The newest leader epoch the log knows, or UNDEFINED_EPOCH (-1)."""
        return self._epochs.latest_epoch

    def epoch_entries(self) -> tuple[EpochEntry, ...]:
        """The leader-epoch cache: (epoch, start_offset), both strictly increasing."""
        with self._lock:
            return self._epochs.entries()

    def assign_epoch(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`; returns whether the cache changed.

        A new leader calls it with its log end offset before it appends (as Kafka's
        does), so followers asking for the previous epoch's end get an answer even
        before the first batch of the new one. Appends record their epochs on their
        own. Only epochs newer than the latest count (epochs.py has the rules).
        """
        with self._lock:
            self._check_open()
            if not self._log_start_offset <= start_offset <= self.log_end_offset:
                raise self._out_of_range(start_offset)
            return self._epochs.assign(epoch, start_offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(epoch, end offset) as Kafka's OffsetsForLeaderEpoch answers it.

        The end offset is where the next newer epoch starts, or the log end offset for
        the latest epoch; (-1, -1) when `epoch` is -1 or newer than any known. From the
        cache only: it never scans the log.
        """
        with self._lock:
            self._check_open()
            return self._epochs.end_offset_for(epoch, self.log_end_offset)

    # ---- reading ---------------------------------------------------------------------

    def read(
        self, offset: int, *, max_bytes: int, max_records: int, max_offset: int | None = None
    ) -> ReadResult:
        """Records with offsets in [offset, max_offset), as JSON fragments joined by b",".

        At most max_records and max_bytes, except that the first readable record is
        always returned so a consumer makes progress. No JSON is parsed: the bytes
        are sliced from the batches as stored.
        """
        # Under the lock: a worker thread's truncation or close never closes a file
        # this read is using (it holds the lock only for moments, never for an fsync).
        with self._lock:
            return self._read(offset, max_bytes, max_records, max_offset)

    def _read(
        self, offset: int, max_bytes: int, max_records: int, max_offset: int | None
    ) -> ReadResult:
        self._check_open()
        end = self.log_end_offset
        if offset < self._log_start_offset or offset > end:
            raise self._out_of_range(offset)
        limit = end if max_offset is None else min(max_offset, end)
        if offset >= limit or max_records <= 0:
            return ReadResult(b"", 0, offset)
        read_ahead = _read_ahead_bytes(max_bytes)
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

    def read_raw(self, offset: int, max_bytes: int) -> bytes:
        """The stored batches from the one holding `offset` on, byte for byte (followers).

        Whole batches only: as many as fit in max_bytes, except that the first is always
        returned whole, even if bigger, so a follower makes progress. The first batch
        may start below `offset`. `offset == log_end_offset` gives b""; outside
        [log_start_offset, log_end_offset] raises OffsetOutOfRangeError. No CRC check
        and no decoding beyond headers; split_batches verifies on the receiving side.
        """
        with self._lock:
            self._check_open()
            if not self._log_start_offset <= offset <= self.log_end_offset:
                raise self._out_of_range(offset)
            read_ahead = _read_ahead_bytes(max_bytes)
            pieces: list[bytes] = []
            taken = 0
            first = bisect_right(self._bases, offset) - 1
            for segment in self._segments[first:]:
                data, offset = segment.read_batches(
                    offset, max_bytes - taken, read_ahead, at_least_one=not pieces
                )
                if data:
                    pieces.append(data)
                    taken += len(data)
                if offset < segment.next_offset or taken >= max_bytes:
                    break  # the byte budget stopped it inside this segment
            return b"".join(pieces)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """First offset whose record timestamp is >= timestamp_ms, or None."""
        with self._lock:
            return self._offset_for_timestamp(timestamp_ms)

    def _offset_for_timestamp(self, timestamp_ms: int) -> int | None:
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

        Reads headers only, without the log's lock: do not truncate, detach segments or
        close the log while iterating.
        """
        self._check_open()
        first = max(bisect_right(self._bases, from_offset) - 1, 0)
        for segment in list(self._segments[first:]):
            for _pos, header in segment.headers_from(from_offset):
                yield header

    # ---- truncation and retention ----------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= offset; returns the new log_end_offset.

        Only at batch boundaries (Kafka's rule): the batch holding `offset` goes whole,
        so the new log_end_offset is its base offset, which may be below `offset`. Kept
        bytes are never rewritten (segments are deleted, the last one is cut with
        ftruncate), and the result is durable on return: run it in a worker thread.
        `offset >= log_end_offset` removes no batch, but still drops the leader-epoch
        entries that start at the log end (Kafka's truncateTo does too): an epoch a
        leader announced there and lost before writing in it, which no other replica
        ever has. `offset < log_start_offset` raises OffsetOutOfRangeError.
        """
        with self._worker_lock:
            with self._lock:
                self._check_open()
                end = self.log_end_offset
                cuts = offset < end
                if cuts:
                    if offset < self._log_start_offset:
                        raise self._out_of_range(offset)
                    while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                        self._segments.pop().delete_files()
                        self._bases.pop()
                    active = self._segments[-1]
                    active.truncate_to(offset)
                    active.write_indexes()
                    end = active.next_offset
                    # log_start_offset is a segment's base, so a batch boundary, and the cut
                    # never goes below it; were it ever inside a batch, it follows the cut.
                    self._log_start_offset = min(self._log_start_offset, end)
                self._epochs.truncate_from_end(end)
            if cuts:
                active.fsync_files()
                fsync_dir(self._directory)
            self._write_epochs_if_changed()
            return end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every record; the log restarts empty with log_start_offset = offset.

        Durable on return: run it in a worker thread.
        """
        if offset < 0:
            raise ValueError("offset must be >= 0")
        with self._worker_lock:
            with self._lock:
                self._check_open()
            # A crash before the new checkpoint is written must not find the old one
            # next to the new empty segment: without a file, open rebuilds the cache
            # from the batch headers that are left.
            with contextlib.suppress(FileNotFoundError):
                (self._directory / LEADER_EPOCH_CHECKPOINT_FILE).unlink()
            fsync_dir(self._directory)
            self._epochs_on_disk = EMPTY_EPOCHS_TEXT
            with self._lock:
                while self._segments:
                    self._segments.pop().delete_files()
                segment = Segment.create(
                    self._directory, offset, self._config.index_interval_bytes, self._pool
                )
                self._segments.append(segment)
                self._bases[:] = [offset]
                self._log_start_offset = offset
                self._epochs.clear()
            write_durably(self._directory / LOG_START_OFFSET_FILE, b"%d\n" % offset)
            self._write_epochs_if_changed()

    def detach_expired_segments(self, now_ms: int) -> list[Segment]:
        """Take the segments retention deletes out of the log, without touching a file.

        Whole old segments go, oldest first, never the active one (the rules are in
        retention.py), and log_start_offset moves to the first segment left, so no
        later read sees them. Cheap, for the event loop; the caller hands the result
        to delete_segments in a worker thread.
        """
        with self._lock:
            self._check_open()
            count = segments_to_delete(
                [SegmentStats(s.size, s.max_timestamp) for s in self._segments],
                now_ms=now_ms,
                retention_ms=self._config.retention_ms,
                retention_bytes=self._config.retention_bytes,
            )
            detached = self._segments[:count]
            del self._segments[:count]
            del self._bases[:count]
            self._log_start_offset = max(self._log_start_offset, self._segments[0].base_offset)
            self._epochs.truncate_from_start(self._log_start_offset)
            return detached

    def delete_segments(self, segments: Sequence[Segment]) -> None:
        """Delete the files of segments detach_expired_segments took out. Worker thread.

        Oldest first, so a crash midway leaves a contiguous log; then the
        log-start-offset and leader-epoch checkpoints are written durably. A crash
        before this finishes is safe: open finds the remaining segments again and takes
        log_start_offset = max(checkpoint, first segment's base), and a later retention
        pass detaches them again. On a closed log only their descriptors are closed and
        the files stay.
        """
        if not segments:
            return
        with self._worker_lock:
            with self._lock:
                if any(s in self._segments for s in segments):
                    raise ValueError("only detached segments can be deleted")
                closed = self._closed
                start = self._log_start_offset
            if closed:
                for segment in segments:
                    segment.close()
                return
            for segment in segments:
                segment.delete_files()
            write_durably(self._directory / LOG_START_OFFSET_FILE, b"%d\n" % start)
            self._write_epochs_if_changed()

    # ---- durability and shutdown -----------------------------------------------------

    def sync(self) -> None:
        """fsync everything appended so far. Run it in a worker thread.

        Only the active segment can hold unsynced data (a roll fsyncs the segment it
        leaves). The fd is duplicated under `_lock`, which is released for the fsync,
        so appends are not held up by it. The leader-epoch checkpoint is written too
        when the cache changed since it last was (rarely: on a new epoch).
        """
        with self._worker_lock:
            with self._lock:
                self._check_open()
                fd = self._segments[-1].dup_fd()
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_epochs_if_changed()

    def _write_epochs_if_changed(self) -> None:
        """Write the leader-epoch checkpoint durably if it should hold other entries.

        It holds the entries that start below the log end: open drops the others anyway
        (an epoch a new leader announced, with no batch yet), so a new partition's
        leader writes no file until its first batch is synced. Only under `_worker_lock`:
        the writes are never concurrent.
        """
        with self._lock:
            text = self._epochs.to_text(self.log_end_offset)
        if text == self._epochs_on_disk:
            return
        write_durably(self._directory / LEADER_EPOCH_CHECKPOINT_FILE, text.encode())
        self._epochs_on_disk = text

    def close(self) -> None:
        """Write the indexes, fsync, and leave a clean-shutdown marker.

        It fsyncs: run it in a worker thread. Appends and reads fail from its start.
        On a full disk the log still closes, without the marker: the records are
        fsynced, and the next open rebuilds the last segment's indexes and the epochs
        it cannot trust (the state a killed process leaves), so deleting a topic frees
        its files even when nothing can be written.
        """
        with self._worker_lock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
            clean = True
            try:
                self._segments[-1].sync_all()
                self._write_epochs_if_changed()
            except OSError as exc:
                if exc.errno not in DISK_FULL_ERRNOS:
                    raise
                clean = False
                self._segments[-1].fsync()  # the records, at least: the indexes are rebuilt
            finally:
                for segment in self._segments:
                    segment.close()
            if clean:
                try:
                    create_marker(self._directory / CLEAN_SHUTDOWN_FILE)
                except OSError as exc:
                    if exc.errno not in DISK_FULL_ERRNOS:
                        raise

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
