"""A segment's sparse indexes: offset -> file position, and timestamp -> offset.

Entries live in memory (`array` + `bisect`) for lookups; the files are only a restart
aid, written on roll, close and recovery, and rebuilt from the segment whenever they
are missing or inconsistent. This module must never read or write the segment's
.log file, and it never decides what is durable: the segment does.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

_NEEDS_BYTESWAP = sys.byteorder == "little"  # index files are big-endian
NO_TIMESTAMP = -1


def _write_file(path: Path, data: bytes) -> None:
    """Writes an index file; one without entries is removed instead (a missing index loads
    as none, and a broker's empty partitions then cost no index files)."""
    if not data:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _be(values: array[int]) -> bytes:
    if _NEEDS_BYTESWAP:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _from_be(typecode: str, data: bytes) -> array[int]:
    values = array(typecode)
    values.frombytes(data)
    if _NEEDS_BYTESWAP:
        values.byteswap()
    return values


class OffsetIndex:
    """Sparse map of (relative offset uint32, file position uint32) for one segment.

    File format: entries of 8 bytes, big-endian. Both columns strictly increase.
    """

    ENTRY = struct.Struct(">II")

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._relative = array("I")
        self._position = array("I")

    def __len__(self) -> int:
        return len(self._relative)

    def append(self, offset: int, position: int) -> None:
        self._relative.append(offset - self.base_offset)
        self._position.append(position)

    def lookup(self, offset: int) -> int:
        """File position of the last indexed batch starting at or before `offset` (0 if none)."""
        k = bisect_right(self._relative, offset - self.base_offset)
        return self._position[k - 1] if k else 0

    def last_relative_offset(self) -> int:
        return self._relative[-1] if self._relative else 0

    def last_position(self) -> int:
        return self._position[-1] if self._position else 0

    def truncate_from_position(self, position: int) -> None:
        """Drop entries pointing at or after `position` (batches being removed)."""
        k = bisect_left(self._position, position)
        del self._relative[k:]
        del self._position[k:]

    def clear(self) -> None:
        self.truncate_from_position(0)

    def write(self) -> None:
        rows = array("I", [0]) * (2 * len(self._relative))
        rows[0::2] = self._relative
        rows[1::2] = self._position
        _write_file(self.path, _be(rows))

    def load(self, segment_size: int) -> bool:
        """Read the file; False (and empty) if it is missing or inconsistent."""
        self.clear()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % self.ENTRY.size:
            return False
        rows = _from_be("I", data)
        relative, position = rows[0::2], rows[1::2]
        increasing = all(a < b for a, b in zip(relative, relative[1:], strict=False)) and all(
            a < b for a, b in zip(position, position[1:], strict=False)
        )
        if not increasing or (position and position[-1] >= segment_size):
            return False
        self._relative, self._position = relative, position
        return True

    def delete_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class TimeIndex:
    """(max timestamp so far int64, relative base offset uint32) for one segment.

    An entry is added when a batch raises the segment's max timestamp; it names that
    batch's base offset, so the first entry with timestamp >= T names the first batch
    holding a record at or after T. File format: entries of 12 bytes, big-endian.
    """

    ENTRY = struct.Struct(">qI")

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._timestamp = array("q")
        self._relative = array("I")

    def __len__(self) -> int:
        return len(self._timestamp)

    @property
    def max_timestamp(self) -> int:
        return self._timestamp[-1] if self._timestamp else NO_TIMESTAMP

    def maybe_append(self, max_timestamp: int, base_offset: int) -> None:
        if max_timestamp > self.max_timestamp:
            self._timestamp.append(max_timestamp)
            self._relative.append(base_offset - self.base_offset)

    def lookup(self, timestamp_ms: int) -> int | None:
        """Base offset of the first batch whose max timestamp is >= timestamp_ms."""
        k = bisect_left(self._timestamp, timestamp_ms)
        if k == len(self._timestamp):
            return None
        return self.base_offset + self._relative[k]

    def truncate_from_offset(self, offset: int) -> None:
        """Drop entries for batches starting at or after `offset`."""
        k = bisect_left(self._relative, offset - self.base_offset)
        del self._timestamp[k:]
        del self._relative[k:]

    def clear(self) -> None:
        del self._timestamp[:]
        del self._relative[:]

    def write(self) -> None:
        _write_file(
            self.path,
            b"".join(
                self.ENTRY.pack(ts, rel)
                for ts, rel in zip(self._timestamp, self._relative, strict=True)
            ),
        )

    def load(self) -> bool:
        """Read the file; False (and empty) if it is missing or inconsistent.

        Entries past the segment's end are the caller's to drop (truncate_from_offset).
        """
        self.clear()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % self.ENTRY.size:
            return False
        rows = list(self.ENTRY.iter_unpack(data))
        ok = all(a[0] < b[0] and a[1] < b[1] for a, b in zip(rows, rows[1:], strict=False))
        if not ok:
            return False
        self._timestamp = array("q", [r[0] for r in rows])
        self._relative = array("I", [r[1] for r in rows])
        return True

    def delete_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
