"""Small files that must survive a crash whole: checkpoints and markers.

Owns the write-a-temporary, fsync, rename, fsync-the-folder sequence, so every small
file the broker relies on after a power cut is written one way, and the cheaper forms for
files that cannot be torn (an empty marker) or are new (nothing old to keep).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Makes a folder's entries (a created, renamed or removed file) durable."""
    fsync_file(directory)


def create_marker(path: Path) -> None:
    """Creates an empty file whose presence is the message (a clean-shutdown marker), durably.

    Nothing in it can be torn, so it needs no temporary file and no fsync of its own: the
    folder's fsync makes the new entry durable.
    """
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """Makes a file's content durable (one written without an fsync of its own)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes) -> None:
    """Writes a file that does not exist yet, in place, and fsyncs it: there is no old content
    to keep, so no temporary file. Its entry is durable once the caller fsyncs the folder
    (new files of one folder share that fsync); until then a crash may leave it missing,
    empty or torn, which its reader must allow for. FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
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
