"""Small files that must survive a crash whole: checkpoints and markers.

Owns the write-a-temporary, fsync, rename, fsync-the-folder sequence, so every small
file the broker relies on after a power cut is written one way.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Makes a folder's entries (a created, renamed or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replaces a small file atomically: a reader sees the old content or the new, whole.

    When the write fails (a full disk) the old file stays as it was and the temporary
    one is removed, so a failed checkpoint never holds space or leaves a torn file.
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)
