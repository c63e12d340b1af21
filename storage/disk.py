"""The free space of the disk that holds a broker's data, and the reserve kept on it.

`DiskSpace` answers whether a partition log may take more bytes, and owns the reserve:
`reserve_bytes` that partition logs never use, so the metadata journal, checkpoints and
index files can still be written when logs have filled the disk. Half of the reserve is
held in a preallocated file (`disk-reserve`) that is deleted when one of those writes
meets a full disk anyway (another process, or other brokers on the same disk, took the
free half), and made again once the space is back. It never decides what to delete and
never writes a partition log; it only measures (os.statvfs) and holds the file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from raftka.storage.errors import DiskFullError

log = logging.getLogger(__name__)

RESERVE_FILE = "disk-reserve"
# statvfs is read at most this often on the append path; bytes written in between are
# counted against the last reading, so a burst of appends cannot overshoot the reserve.
FREE_BYTES_MAX_AGE_S = 0.1
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

T = TypeVar("T")


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk raises (ENOSPC, or a quota's EDQUOT)."""
    if isinstance(exc, DiskFullError):
        return True
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class DiskSpace:
    """Free space on the filesystem of `directory`, against a reserve of `reserve_bytes`.

    A partition log may take `n` more bytes while free space after them, plus the part
    of the reserve held in the file, stays at or above `reserve_bytes`: with the file
    held, logs stop when half the reserve is left free; once it was released, the whole
    reserve must be free again, so what the file gave back stays with the metadata.
    """

    def __init__(
        self, directory: Path, reserve_bytes: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if reserve_bytes < 0:
            raise ValueError("reserve_bytes must be >= 0")
        self.directory = directory
        self.reserve_bytes = reserve_bytes
        self.reserve_file = directory / RESERVE_FILE
        self.reserve_file_bytes = reserve_bytes // 2
        self.refusals = 0  # appends refused for want of space (a metric)
        self._clock = clock
        self._lock = threading.Lock()  # the reserve file: the Raft thread may release it
        self._free = 0
        self._written_since = 0
        self._read_at = float("-inf")
        self._held = 0

    # ---- measuring -----------------------------------------------------------------

    def refresh(self) -> int:
        """Reads the free space now (os.statvfs) and returns it."""
        st = os.statvfs(self.directory)
        self._free = st.f_bavail * st.f_frsize
        self._written_since = 0
        self._read_at = self._clock()
        return self._free

    def free_bytes(self) -> int:
        if self._clock() - self._read_at > FREE_BYTES_MAX_AGE_S:
            self.refresh()
        return self._free - self._written_since

    @property
    def held_bytes(self) -> int:
        """Bytes of the reserve held in the reserve file right now."""
        return self._held

    def _short_of(self, nbytes: int) -> bool:
        return self.free_bytes() - nbytes + self._held < self.reserve_bytes

    def has_room(self, nbytes: int = 0) -> bool:
        """Whether a partition log may take `nbytes` more (re-reading the disk if not)."""
        if self._short_of(nbytes):
            self.refresh()
            return not self._short_of(nbytes)
        return True

    def refuse(self) -> None:
        """Counts an append refused before it was tried (the leader's check at its reserve)."""
        self.refusals += 1

    def check_room(self, nbytes: int) -> None:
        """Counts `nbytes` about to be written to a partition log, or raises DiskFullError
        (having counted a refusal) when they would eat into the reserve."""
        if not self.has_room(nbytes):
            self.refusals += 1
            raise DiskFullError(
                f"the disk of {self.directory} has {max(self.free_bytes(), 0)} bytes free; "
                f"{nbytes} more would leave less than the reserve of {self.reserve_bytes}"
            )
        self._written_since += nbytes

    # ---- the reserve file ----------------------------------------------------------

    def hold_reserve(self) -> bool:
        """Makes the reserve file if it is missing and the disk has the room; returns
        whether it is held. Blocking (it allocates): a worker thread's job at run time."""
        with self._lock:
            if self._held or self.reserve_file_bytes == 0:
                return bool(self._held)
            size = self.reserve_file_bytes
            if self.refresh() < self.reserve_bytes:
                return False
            try:
                fd = os.open(self.reserve_file, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    # Allocated for real (not a sparse file): deleting it frees `size`.
                    os.posix_fallocate(fd, 0, size)
                finally:
                    os.close(fd)
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                with contextlib.suppress(FileNotFoundError):
                    self.reserve_file.unlink()
                return False
            self._held = size
            self.refresh()
            log.info("holding a disk reserve of %d bytes in %s", size, self.reserve_file)
            return True

    def release_reserve(self) -> bool:
        """Deletes the reserve file (the disk is full and something must still be
        written); returns whether anything was freed. Any thread."""
        with self._lock:
            held = self._held > 0 or self.reserve_file.exists()
            with contextlib.suppress(FileNotFoundError):
                self.reserve_file.unlink()
            self._held = 0
            self.refresh()
        if held:
            log.warning("the disk is full: released the reserve file %s", self.reserve_file)
        return held

    def with_room(self, write: Callable[[], T]) -> T:
        """Runs `write`; if the disk is full, releases the reserve and runs it once more."""
        try:
            return write()
        except OSError as exc:
            if not is_disk_full(exc) or not self.release_reserve():
                raise
        return write()
