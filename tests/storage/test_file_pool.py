"""The pool of open segment files: at most max_open_files open, least recently used closed
first, never a file in use, and a closed file reopened on its next use without a trace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.storage.file_pool import OpenFilePool, PooledFile
from raftka.storage.log import LogConfig, PartitionLog

from .helpers import append_rolling, read_all, records


def _files(pool: OpenFilePool, tmp_path: Path, count: int) -> list[PooledFile]:
    files = [pool.file(tmp_path / f"f{i}") for i in range(count)]
    for f in files:
        f.create()
    return files


def test_opening_past_the_bound_closes_the_least_recently_used(tmp_path: Path) -> None:
    pool = OpenFilePool(max_open_files=2)
    a, b, c = _files(pool, tmp_path, 3)  # creating c evicts a
    assert [f.is_open for f in (a, b, c)] == [False, True, True]
    with b:  # b is now the most recently used, so opening a evicts c
        pass
    with a:
        pass
    assert [f.is_open for f in (a, b, c)] == [True, True, False]
    assert (pool.open_files, pool.evictions, pool.opens) == (2, 2, 4)


def test_a_file_in_use_is_never_closed(tmp_path: Path) -> None:
    pool = OpenFilePool(max_open_files=1)
    a, b, c = _files(pool, tmp_path, 3)
    with a as fd:
        os.write(fd, b"held")
        with b, c:  # all in use: the pool goes over its bound rather than close one
            assert pool.open_files == 3
        assert os.pread(fd, 4, 0) == b"held"  # still the same, open descriptor
        assert a.is_open
    with b:  # the next open brings it back within the bound
        pass
    assert pool.open_files == 1


def test_a_closed_file_reopens_where_it_was_for_appends(tmp_path: Path) -> None:
    pool = OpenFilePool(max_open_files=1)
    a, b = _files(pool, tmp_path, 2)
    for f, data in ((a, b"one,"), (b, b"uno,"), (a, b"two"), (b, b"dos")):
        with f as fd:
            os.write(fd, data)
    assert (tmp_path / "f0").read_bytes() == b"one,two"
    assert (tmp_path / "f1").read_bytes() == b"uno,dos"
    a.close()
    assert not a.is_open and pool.open_files == 1


def test_a_deleted_file_is_not_recreated_by_a_reopen(tmp_path: Path) -> None:
    pool = OpenFilePool(max_open_files=1)
    (a,) = _files(pool, tmp_path, 1)
    a.close()
    (tmp_path / "f0").unlink()
    with pytest.raises(FileNotFoundError), a:
        pass
    assert pool.open_files == 0


def test_logs_sharing_a_small_pool_append_read_roll_sync_and_reopen(tmp_path: Path) -> None:
    pool = OpenFilePool(max_open_files=2)
    config = LogConfig(segment_bytes=2000, retention_ms=None)
    logs = [PartitionLog.open(tmp_path / f"p{i}", config, pool) for i in range(5)]
    for round_ in range(6):  # several segments each: many more files than the pool holds
        for log in logs:
            append_rolling(log, records(round_ * 10, 10))
            log.sync()
    assert pool.open_files <= 2 and pool.evictions > 0
    for log in logs:
        assert [r["offset"] for r in read_all(log)] == list(range(60))
        assert len(list(log.directory.glob("*.log"))) > 1
        log.truncate_to(55)
        log.close()
    assert pool.open_files == 0
    reopened = [PartitionLog.open(tmp_path / f"p{i}", config, pool) for i in range(5)]
    for log in reopened:
        assert [r["offset"] for r in read_all(log)] == list(range(50))
        log.close()
