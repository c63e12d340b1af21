"""The broker's budget of file descriptors: the process limit and the share segments get.

It owns raising RLIMIT_NOFILE's soft limit to the hard limit at start (as Kafka's scripts
ask operators to, but done by the broker itself, and logged), and the default size of the
pool of open segment files (storage/file_pool.py). It must never open or close a file
itself: the pool does, and sockets, the Raft journal and worker threads take the rest.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

log = logging.getLogger(__name__)

# Segment files get this share of the descriptor limit by default; the rest is for client
# and broker connections, Raft's sockets and journal, and files worker threads open for a
# moment (index files, checkpoints).
SEGMENT_FILES_SHARE = 0.5
MIN_SEGMENT_FILES = 16  # below this a pool would reopen files on almost every request
# Linux refuses a soft limit above fs.nr_open even when the hard limit is "unlimited".
NR_OPEN_PATH = Path("/proc/sys/fs/nr_open")
NR_OPEN_FALLBACK = 1 << 20  # Linux's default fs.nr_open


def open_files_limit() -> int:
    """The process's soft RLIMIT_NOFILE (what opening files and sockets runs into)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (before, after), logged either way."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            target = int(NR_OPEN_PATH.read_text())
        except (OSError, ValueError):
            target = NR_OPEN_FALLBACK
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
    now = open_files_limit()
    log.info("open files limit (RLIMIT_NOFILE): %d, raised to %d (hard limit %d)", soft, now, hard)
    return soft, now


def default_max_open_files(limit: int) -> int:
    """How many segment files may be open at once under a descriptor limit of `limit`."""
    return max(MIN_SEGMENT_FILES, int(limit * SEGMENT_FILES_SHARE))
