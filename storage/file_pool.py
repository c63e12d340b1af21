"""A bounded pool of open segment files: the broker's budget of file descriptors for logs.

It owns which segment `.log` files hold an open descriptor. A file is opened on its first
use and kept in a least-recently-used order; opening one more than `max_open_files` closes
the least recently used files that nobody is using at that moment (a file is in use from
`with pooled_file as fd:` to the end of the block), so a broker with far more segments
than its `ulimit -n` opens only as many as the pool holds. Closing a descriptor loses
nothing: written bytes stay in the page cache, and a later fsync through any descriptor of
the file covers them (Linux reports a writeback error to descriptors opened after it too).
So an eviction never flushes and never fsyncs: opening and closing are cheap file
operations like the pread and write the event loop already does. It must never decide
what a segment contains or when it is durable: the segment and the log do.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from types import TracebackType

# The flags every reopen uses: segments are append-only, so O_APPEND; O_CREAT never, so a
# file deleted by mistake fails loudly instead of coming back empty.
REOPEN_FLAGS = os.O_RDWR | os.O_APPEND


class OpenFilePool:
    """At most `max_open_files` descriptors of pooled files open at once (None: no bound).

    Files in use are never closed, so the pool may briefly hold more than its bound: as
    many more as are in use at once (a few per worker thread and one on the event loop),
    and closes them as soon as they are not.
    Thread-safe: the event loop and worker threads share it; its lock is held only for
    bookkeeping, an open or a close, never across a read, a write or an fsync.
    """

    def __init__(self, max_open_files: int | None = None) -> None:
        if max_open_files is not None and max_open_files < 1:
            raise ValueError(f"max_open_files must be >= 1 or None, got {max_open_files}")
        self.max_open_files = max_open_files
        self._lock = threading.Lock()
        # Open files, least recently used first.
        self._open: OrderedDict[PooledFile, None] = OrderedDict()
        self.evictions = 0  # descriptors closed to make room (a metric)
        self.opens = 0  # descriptors opened, first opens and reopens (a metric)

    @property
    def open_files(self) -> int:
        return len(self._open)

    def file(self, path: Path) -> PooledFile:
        """A handle on `path`, not opened yet."""
        return PooledFile(self, path)

    def _acquire(self, f: PooledFile, extra_flags: int = 0) -> int:
        with self._lock:
            f._users += 1
            if f._fd >= 0:
                self._open.move_to_end(f)
                return f._fd
            try:
                f._fd = os.open(f.path, REOPEN_FLAGS | extra_flags, 0o644)
            except BaseException:
                f._users -= 1
                raise
            self.opens += 1
            self._open[f] = None
            self._evict()
            return f._fd

    def _evict(self) -> None:
        """Close least recently used files nobody uses until within the bound. Under _lock."""
        limit = self.max_open_files
        if limit is None or len(self._open) <= limit:
            return
        excess = len(self._open) - limit
        victims: list[PooledFile] = []
        for f in self._open:  # from the least recently used; files in use are few
            if len(victims) == excess:
                break
            if f._users == 0:
                victims.append(f)
        for victim in victims:
            del self._open[victim]
            os.close(victim._fd)
            victim._fd = -1
            self.evictions += 1

    def _release(self, f: PooledFile) -> None:
        with self._lock:
            f._users -= 1
            # Over the bound only while files were in use: back within it once they are not.
            if self.max_open_files is not None and len(self._open) > self.max_open_files:
                self._evict()

    def _close(self, f: PooledFile) -> None:
        # The log's locks keep its own closes away from its reads and writes, as they did
        # before the pool; the pool only keeps its evictions away from them.
        with self._lock:
            if f._fd >= 0:
                del self._open[f]
                os.close(f._fd)
                f._fd = -1


class PooledFile:
    """One file of the pool: `with pooled_file as fd:` opens it if needed and keeps it open
    (never evicted) until the block ends. Reentrant: blocks may nest."""

    __slots__ = ("_fd", "_pool", "_users", "path")

    def __init__(self, pool: OpenFilePool, path: Path) -> None:
        self._pool = pool
        self.path = path
        self._fd = -1
        self._users = 0  # `with` blocks running: the pool never closes a file in use

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def create(self) -> None:
        """Create the file empty (an old one of the same name is emptied) and keep it open."""
        self._pool._acquire(self, os.O_CREAT | os.O_TRUNC)
        self._pool._release(self)

    def close(self) -> None:
        """Close the descriptor, if open; the next use reopens it."""
        self._pool._close(self)

    def __enter__(self) -> int:
        return self._pool._acquire(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool._release(self)
