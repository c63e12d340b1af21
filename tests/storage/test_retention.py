"""Retention in two steps: detach on the event loop (no file I/O), delete in a worker thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.storage.errors import OffsetOutOfRangeError
from raftka.storage.log import LOG_START_OFFSET_FILE, PartitionLog

from .helpers import append_rolling, open_log, read_all, records

SEGMENT_BYTES = 2000


def filled(path: Path, batches: int = 30) -> PartitionLog:
    log = open_log(path, segment_bytes=SEGMENT_BYTES, retention_bytes=5000)
    for b in range(batches):
        append_rolling(log, records(b * 5, 5))
    return log


def log_files(log: PartitionLog) -> list[str]:
    return sorted(p.name for p in log.directory.glob("*.log"))


def test_detached_segments_are_unreadable_but_their_files_stay_until_deleted(
    tmp_path: Path,
) -> None:
    log = filled(tmp_path / "p")
    files = log_files(log)
    detached = log.detach_expired_segments(now_ms=0)
    assert detached and log.log_start_offset == int(log_files(log)[len(detached)][:-4])
    assert log_files(log) == files  # no file was touched
    with pytest.raises(OffsetOutOfRangeError):
        log.read(log.log_start_offset - 1, max_bytes=100, max_records=1)
    assert read_all(log)[0]["offset"] == log.log_start_offset
    log.delete_segments(detached)
    assert log_files(log) == files[len(detached) :]
    checkpoint = (log.directory / LOG_START_OFFSET_FILE).read_text()
    assert int(checkpoint) == log.log_start_offset


def test_crash_between_detach_and_delete_brings_the_segments_back(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    detached = log.detach_expired_segments(now_ms=0)
    log.abandon()  # killed before the worker deleted anything
    log.delete_segments(detached)  # a closed log: descriptors closed, files kept
    again = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES, retention_bytes=5000)
    assert again.log_start_offset == 0
    assert [r["offset"] for r in read_all(again)] == list(range(150))
    assert len(again.detach_expired_segments(now_ms=0)) == len(detached)


def test_crash_midway_through_delete_keeps_a_contiguous_log(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    detached = log.detach_expired_segments(now_ms=0)
    assert len(detached) >= 2
    (log.directory / log_files(log)[0]).unlink()  # the oldest went, then the kill
    log.abandon()
    again = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES)
    assert again.log_start_offset == detached[1].base_offset
    assert [r["offset"] for r in read_all(again)] == list(range(detached[1].base_offset, 150))


def test_delete_segments_refuses_segments_still_in_the_log(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    with pytest.raises(ValueError):
        log.delete_segments(log._segments[:1])  # a caller's bug that would unlink live data
    assert [r["offset"] for r in read_all(log)] == list(range(150))
