"""A full disk in the storage layer: ENOSPC never leaves a torn batch or checkpoint,
never keeps a log from closing, and the reserve's arithmetic holds."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from raftka.storage import disk as disk_module
from raftka.storage import files
from raftka.storage.disk import DiskSpace
from raftka.storage.errors import DiskFullError
from raftka.storage.log import CLEAN_SHUTDOWN_FILE
from raftka.storage.segment import Segment

from .helpers import append_rolling, open_log, read_all, records

MiB = 1 << 20


def no_space(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_batch_that_meets_enospc_is_cut_back_and_raises_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(tmp_path)
    append_rolling(log, records(0, 3))
    size, end = log.size_bytes, log.log_end_offset
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        monkeypatch.setattr("raftka.storage.segment.os.write", no_space)
        return real_write(fd, bytes(data)[: len(data) // 2])  # a torn write first

    monkeypatch.setattr("raftka.storage.segment.os.write", half_then_full)
    with pytest.raises(DiskFullError):
        log.append(records(3, 2))
    monkeypatch.undo()
    assert (log.size_bytes, log.log_end_offset) == (size, end)
    assert os.path.getsize(tmp_path / "00000000000000000000.log") == size
    append_rolling(log, records(3, 2))
    assert [r["offset"] for r in read_all(log)] == [0, 1, 2, 3, 4]
    log.close()


def test_a_checkpoint_that_cannot_be_written_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint"
    files.write_durably(path, b"old\n")
    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        files.write_durably(path, b"new\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_log_closes_without_its_indexes_on_a_full_disk_and_recovers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(tmp_path, segment_bytes=2048, index_interval_bytes=64)
    for n in range(0, 60, 3):
        append_rolling(log, records(n, 3, pad=20))
    monkeypatch.setattr(Segment, "write_indexes", no_space)
    log.close()  # no exception: a deleted topic's files can go
    monkeypatch.undo()
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()  # the next open re-scans
    reopened = open_log(tmp_path, segment_bytes=2048, index_interval_bytes=64)
    assert [r["offset"] for r in read_all(reopened)] == list(range(60))
    assert [r["offset"] for r in read_all(reopened, 41)] == list(range(41, 60))
    reopened.close()


@pytest.mark.parametrize(
    ("free", "held", "nbytes", "room"),
    [
        (10 * MiB, 2 * MiB, 1 * MiB, True),  # 9 MiB left + 2 held >= 4
        (3 * MiB, 2 * MiB, 1 * MiB, True),  # 2 left + 2 held: exactly the reserve
        (3 * MiB, 2 * MiB, 1 * MiB + 1, False),
        (5 * MiB, 0, 1 * MiB + 1, False),  # released: the whole reserve must stay free
        (5 * MiB, 0, 1 * MiB, True),
    ],
)
def test_appends_stop_where_they_would_eat_into_the_reserve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int, held: int, nbytes: int, room: bool
) -> None:
    stat = SimpleNamespace(f_bavail=free // 4096, f_frsize=4096)
    monkeypatch.setattr(disk_module.os, "statvfs", lambda _: stat)
    space = DiskSpace(tmp_path, 4 * MiB)
    space._held = held
    if room:
        space.check_room(nbytes)
        assert space.refusals == 0
    else:
        with pytest.raises(DiskFullError):
            space.check_room(nbytes)
        assert space.refusals == 1


def test_the_reserve_file_is_allocated_released_and_made_again(tmp_path: Path) -> None:
    space = DiskSpace(tmp_path, 4 * MiB)
    assert space.hold_reserve()
    st = os.stat(space.reserve_file)
    assert st.st_size == 2 * MiB and st.st_blocks * 512 >= 2 * MiB
    assert space.release_reserve() and not space.reserve_file.exists()
    assert space.held_bytes == 0 and not space.release_reserve()
    assert space.with_room(lambda: 7) == 7
    assert space.hold_reserve() and space.held_bytes == 2 * MiB
