"""Rolling: a full segment refuses appends (SegmentFullError), roll() runs in a worker thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from raftka.storage.errors import SegmentFullError
from raftka.storage.log import PartitionLog
from raftka.storage.segment import Segment

from .helpers import open_log, read_all, records

WAIT_S = 10.0  # upper bound for a thread to reach a point; never slept


def full_log(path: Path) -> PartitionLog:
    """A log whose active segment has just refused a batch of ten records."""
    log = open_log(path, segment_bytes=4500)
    for b in range(100):
        try:
            log.append(records(b * 10, 10))
        except SegmentFullError:
            return log
    raise AssertionError("the segment never filled")


def test_append_to_a_full_segment_raises_and_writes_nothing(tmp_path: Path) -> None:
    log = full_log(tmp_path / "p")
    end, size = log.log_end_offset, log.size_bytes
    files = {p.name: p.stat().st_size for p in log.directory.glob("*.log")}
    with pytest.raises(SegmentFullError):
        log.append(records(end, 10))
    assert (log.log_end_offset, log.size_bytes) == (end, size)
    assert {p.name: p.stat().st_size for p in log.directory.glob("*.log")} == files


def test_roll_starts_a_segment_at_the_log_end_then_appends_go_there(tmp_path: Path) -> None:
    log = full_log(tmp_path / "p")
    end = log.log_end_offset
    log.roll()
    names = sorted(p.name for p in log.directory.glob("*.log"))
    assert names == ["00000000000000000000.log", f"{end:020d}.log"]
    # the segment left behind is complete with its index files (an offset index without
    # entries, under index_interval_bytes of data, has no file)
    assert (log.directory / "00000000000000000000.timeindex").exists()
    assert log.append(records(end, 10)).base_offset == end
    assert [r["offset"] for r in read_all(log)] == list(range(end + 10))


def test_rolling_an_empty_active_segment_does_nothing(tmp_path: Path) -> None:
    log = full_log(tmp_path / "p")
    log.roll()
    log.roll()  # a second caller that saw the same SegmentFullError
    assert len(list(log.directory.glob("*.log"))) == 2
    empty = open_log(tmp_path / "q")
    empty.roll()
    assert len(list(empty.directory.glob("*.log"))) == 1


def test_appends_are_refused_and_reads_go_on_while_a_roll_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = full_log(tmp_path / "p")
    end = log.log_end_offset
    fsyncing, release = threading.Event(), threading.Event()
    real_sync_all = Segment.sync_all

    def slow_sync_all(segment: Segment) -> None:
        fsyncing.set()
        assert release.wait(WAIT_S)
        real_sync_all(segment)

    monkeypatch.setattr(Segment, "sync_all", slow_sync_all)
    roller = threading.Thread(target=log.roll)
    roller.start()
    try:
        assert fsyncing.wait(WAIT_S)
        # The segment being fsynced must not grow: appends wait for the roll to finish.
        with pytest.raises(SegmentFullError):
            log.append(records(end, 1))
        # Reads do not wait for the roll's fsync.
        assert len(read_all(log)) == end
    finally:
        release.set()
        roller.join(WAIT_S)
    assert not roller.is_alive()
    assert log.append(records(end, 1)).base_offset == end
    assert len(list(log.directory.glob("*.log"))) == 2
