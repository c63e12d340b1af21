"""One segment of a partition log: a .log file of batches plus its two index files.

It owns the segment's files, its in-memory size and indexes, the scan that recovers it
after a crash, and truncation inside it. It writes each batch with one `os.write` and
reads with `os.pread`, through a descriptor the broker's OpenFilePool (file_pool.py) opens
on first use and may close when the segment is idle: every use holds it for one system
call or one fsync. It must never decide when to roll, what to retain or when to fsync:
PartitionLog decides, the segment only does.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from crc32c import crc32c

from raftka.storage.batch import CRC_START, HEADER_BYTES, BatchHeader, decode_header
from raftka.storage.errors import CorruptBatchError, DiskFullError
from raftka.storage.file_pool import OpenFilePool
from raftka.storage.files import fsync_file
from raftka.storage.index import OffsetIndex, TimeIndex

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
OFFSET_DIGITS = 20
RECOVERY_READ_BYTES = 8 << 20  # recovery reads the file in chunks this big
MAX_SEGMENT_FILE_BYTES = (1 << 32) - 1  # index positions are uint32
MAX_RELATIVE_OFFSET = (1 << 32) - 1  # index relative offsets are uint32


def segment_name(base_offset: int) -> str:
    return f"{base_offset:0{OFFSET_DIGITS}d}"


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Segment:
    """Batches with offsets [base_offset, next_offset) in one file named by base_offset."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        index_interval_bytes: int,
        pool: OpenFilePool | None = None,
    ) -> None:
        name = segment_name(base_offset)
        self.directory = directory
        self.base_offset = base_offset
        self.path = directory / (name + LOG_SUFFIX)
        self.index = OffsetIndex(directory / (name + INDEX_SUFFIX), base_offset)
        self.time_index = TimeIndex(directory / (name + TIME_INDEX_SUFFIX), base_offset)
        self.index_interval_bytes = index_interval_bytes
        self.size = 0
        self.next_offset = base_offset
        self._bytes_since_index_entry = 0
        # Without a pool (tests, tools) the segment has one of its own, without a bound.
        self._file = (pool or OpenFilePool()).file(self.path)

    # ---- lifecycle -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        index_interval_bytes: int,
        pool: OpenFilePool | None = None,
    ) -> Segment:
        """A new empty segment (an old file of the same name is emptied)."""
        seg = cls(directory, base_offset, index_interval_bytes, pool)
        seg._file.create()
        seg.index.delete_file()
        seg.time_index.delete_file()
        return seg

    @classmethod
    def open(
        cls,
        directory: Path,
        base_offset: int,
        index_interval_bytes: int,
        *,
        trust_indexes: bool,
        pool: OpenFilePool | None = None,
    ) -> tuple[Segment, int]:
        """Open an existing segment; returns it and how many torn bytes were cut off.

        With trust_indexes (a segment rolled or closed cleanly) the index files are
        loaded and only the batches after the last offset-index entry are scanned;
        otherwise, or if the files do not fit the data, the whole file is scanned and
        the indexes rebuilt. Either way the file is cut at the first batch that is
        torn, corrupt or not contiguous.
        """
        seg = cls(directory, base_offset, index_interval_bytes, pool)
        with seg._file as fd:
            file_size = os.fstat(fd).st_size
        if trust_indexes and seg.index.load(file_size) and seg.time_index.load():
            entries = len(seg.index)
            pos = seg.index.last_position()
            offset = base_offset + seg.index.last_relative_offset() if entries else base_offset
            seg.index.truncate_from_position(pos)
            seg.time_index.truncate_from_offset(offset)
            seg._bytes_since_index_entry = index_interval_bytes if entries else 0
            end, next_offset = seg._scan(pos, offset, file_size)
            if end > pos or pos == file_size:
                seg._finish_recovery(end, next_offset, file_size, rewrite_indexes=end < file_size)
                return seg, file_size - end
        seg.index.clear()
        seg.time_index.clear()
        seg._bytes_since_index_entry = 0
        end, next_offset = seg._scan(0, base_offset, file_size)
        seg._finish_recovery(end, next_offset, file_size, rewrite_indexes=True)
        return seg, file_size - end

    def _finish_recovery(
        self, end: int, next_offset: int, file_size: int, *, rewrite_indexes: bool
    ) -> None:
        if end < file_size:
            with self._file as fd:
                os.ftruncate(fd, end)
        self.size = end
        self.next_offset = next_offset
        if rewrite_indexes:
            try:
                self.write_indexes()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                # A full disk: the indexes in memory are whole; without files on disk
                # the next open rebuilds them, as it would after a crash.
                self.index.delete_file()
                self.time_index.delete_file()

    def _scan(self, pos: int, expected_offset: int, file_size: int) -> tuple[int, int]:
        """Verify batches from pos, indexing each; stop at the first bad one.

        Returns (end of the last good batch, the offset after it).
        """
        buf = b""
        buf_start = pos
        while pos < file_size:
            rel = pos - buf_start
            if rel + HEADER_BYTES > len(buf):
                buf, buf_start, rel = self._pread(pos, RECOVERY_READ_BYTES, file_size), pos, 0
            try:
                header = decode_header(buf, rel, verify_crc=False)
            except CorruptBatchError:
                break
            size = header.size_bytes
            if pos + size > file_size or header.base_offset != expected_offset:
                break
            if rel + size > len(buf):
                want = max(RECOVERY_READ_BYTES, size)
                buf, buf_start, rel = self._pread(pos, want, file_size), pos, 0
            if crc32c(memoryview(buf)[rel + CRC_START : rel + size]) != header.crc:
                break
            self._index_batch(pos, header)
            pos += size
            expected_offset = header.next_offset
        return pos, expected_offset

    def _pread(self, pos: int, length: int, limit: int) -> bytes:
        with self._file as fd:
            return os.pread(fd, min(length, limit - pos), pos)

    def close(self) -> None:
        """Close the descriptor if it is open (a later use would reopen it)."""
        self._file.close()

    def delete_files(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.index.delete_file()
        self.time_index.delete_file()

    # ---- writing ---------------------------------------------------------------------

    def dup_fd(self) -> int:
        """A descriptor of the .log file that the caller owns and closes (an fsync's: the
        pool or a truncation may close the segment's own meanwhile)."""
        with self._file as fd:
            return os.dup(fd)

    def fsync(self) -> None:
        with self._file as fd:
            os.fsync(fd)

    @property
    def max_timestamp(self) -> int:
        return self.time_index.max_timestamp

    def is_empty(self) -> bool:
        return self.size == 0

    def count_fitting(self, headers: Sequence[BatchHeader], segment_bytes: int) -> int:
        """How many of these batches, in order, the segment can take within its limits."""
        limit = min(segment_bytes, MAX_SEGMENT_FILE_BYTES)
        size = self.size
        for taken, header in enumerate(headers):
            # An empty segment takes its first batch whatever its size: it needs a home.
            if size > 0 and (
                size + header.size_bytes > limit
                or header.last_offset - self.base_offset > MAX_RELATIVE_OFFSET
            ):
                return taken
            size += header.size_bytes
        return len(headers)

    def append(self, data: bytes | memoryview, headers: Sequence[BatchHeader]) -> None:
        """Write batches (`data` holds them back to back) with one write; on failure cut the
        file back so no torn tail stays."""
        position = self.size
        with self._file as fd:
            try:
                _write_all(fd, data)
            except BaseException as exc:
                os.ftruncate(fd, position)
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFullError(f"{self.path}: no space for {len(data)} bytes") from exc
                raise
        for header in headers:
            self._index_batch(position, header)
            position += header.size_bytes

    def _index_batch(self, position: int, header: BatchHeader) -> None:
        if self._bytes_since_index_entry >= self.index_interval_bytes:
            self.index.append(header.base_offset, position)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += header.size_bytes
        self.time_index.maybe_append(header.max_timestamp, header.base_offset)
        self.size = position + header.size_bytes
        self.next_offset = header.next_offset

    def write_indexes(self) -> None:
        self.index.write()
        self.time_index.write()

    def sync_all(self) -> None:
        """Write the index files and fsync all three files (before a roll or a close)."""
        self.write_indexes()
        self.fsync_files()

    def fsync_files(self) -> None:
        """fsync the .log file and the index files as they are on disk (an index without
        entries has no file)."""
        for path in (self.index.path, self.time_index.path):
            with contextlib.suppress(FileNotFoundError):
                fsync_file(path)
        self.fsync()

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose last offset is >= offset, with one ftruncate.

        The batch holding `offset` goes whole (Kafka's rule): the bytes kept are never
        rewritten, so a crash leaves either the old file or the cut one, and a
        follower's kept batches stay byte-identical to its leader's. It does not fsync:
        the log decides when.
        """
        for position, header in self.headers_from(offset):
            with self._file as fd:
                os.ftruncate(fd, position)
            self.size = position
            self.next_offset = header.base_offset
            self.index.truncate_from_position(position)
            self.time_index.truncate_from_offset(header.base_offset)
            last = self.index.last_position() if len(self.index) else 0
            self._bytes_since_index_entry = position - last
            return

    # ---- reading ---------------------------------------------------------------------

    def headers_from(self, offset: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch whose last offset is >= offset.

        Reads only headers, one pread each from the nearest index entry on: for paths
        that need no record bytes (truncation, the leader-epoch cache's rebuild).
        """
        pos = self.index.lookup(offset)
        while pos < self.size:
            header = decode_header(self._pread(pos, HEADER_BYTES, self.size), 0, verify_crc=False)
            if header.last_offset >= offset:
                yield pos, header
            pos += header.size_bytes

    def read_batches(
        self, offset: int, max_bytes: int, read_ahead_bytes: int, *, at_least_one: bool
    ) -> tuple[bytes, int]:
        """Whole batches as stored, from the one holding `offset` on; and the offset after.

        As many as fit in max_bytes; with at_least_one the first goes even if it alone
        is bigger. Headers are walked in the read-ahead buffer before a batch is taken,
        so the batch that does not fit is never read (batches_from reads each batch
        whole before its caller sees it): usually one pread. No CRC check.
        """
        pos = self.index.lookup(offset)
        buf = b""
        buf_start = pos
        start = end = -1
        next_offset = offset
        while pos < self.size:
            rel = pos - buf_start
            if rel + HEADER_BYTES > len(buf):
                buf, buf_start, rel = self._pread(pos, read_ahead_bytes, self.size), pos, 0
            header = decode_header(buf, rel, verify_crc=False)
            batch_end = pos + header.size_bytes
            if header.last_offset >= offset:
                if start < 0:
                    if header.size_bytes > max_bytes and not at_least_one:
                        break
                    start = pos
                elif batch_end - start > max_bytes:
                    break
                end, next_offset = batch_end, header.next_offset
                if end - start >= max_bytes:
                    break
            pos = batch_end
        if start < 0:
            return b"", offset
        if buf_start <= start and end <= buf_start + len(buf):
            return buf[start - buf_start : end - buf_start], next_offset
        data = self._pread(start, end - start, end)
        if len(data) != end - start:
            raise CorruptBatchError(f"{self.path}: batches at {start} are cut short")
        return data, next_offset

    def batches_from(
        self, offset: int, read_ahead_bytes: int
    ) -> Iterator[tuple[int, BatchHeader, memoryview]]:
        """(position, header, whole batch) for each batch whose last offset is >= offset.

        Reads ahead in chunks of read_ahead_bytes; CRCs are not re-checked (every batch
        was verified when it was written or recovered).
        """
        pos = self.index.lookup(offset)
        end = self.size
        buf = b""
        buf_start = pos
        while pos < end:
            rel = pos - buf_start
            if rel + HEADER_BYTES > len(buf):
                buf, buf_start, rel = self._pread(pos, read_ahead_bytes, end), pos, 0
            header = decode_header(buf, rel, verify_crc=False)
            size = header.size_bytes
            if header.last_offset >= offset:
                if rel + size > len(buf):
                    want = max(read_ahead_bytes, size)
                    buf, buf_start, rel = self._pread(pos, want, end), pos, 0
                    if size > len(buf):
                        raise CorruptBatchError(f"{self.path}: batch at {pos} is cut short")
                yield pos, header, memoryview(buf)[rel : rel + size]
            pos += size
