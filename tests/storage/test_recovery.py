"""Recovery on open: torn or corrupt tails are cut, indexes rebuilt, intact batches kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.storage.log import CLEAN_SHUTDOWN_FILE, PartitionLog

from .helpers import append_rolling, open_log, read_all, records


def filled(path: Path, batches: int = 12) -> PartitionLog:
    log = open_log(path, segment_bytes=4500, index_interval_bytes=500)
    for b in range(batches):
        append_rolling(log, records(b * 10, 10))
    return log


def last_segment(path: Path) -> Path:
    return sorted(path.glob("*.log"))[-1]


def test_clean_close_leaves_marker_and_reopen_removes_it(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    log.close()
    assert (tmp_path / "p" / CLEAN_SHUTDOWN_FILE).exists()
    again = open_log(tmp_path / "p", segment_bytes=4500)
    assert not (tmp_path / "p" / CLEAN_SHUTDOWN_FILE).exists()
    assert [r["offset"] for r in read_all(again)] == list(range(120))


@pytest.mark.parametrize("cut", [1, 10, 61, 200])
def test_torn_tail_is_cut_at_the_last_whole_batch(tmp_path: Path, cut: int) -> None:
    log = filled(tmp_path / "p")
    log.abandon()
    seg = last_segment(tmp_path / "p")
    os.truncate(seg, seg.stat().st_size - cut)
    again = open_log(tmp_path / "p", segment_bytes=4500)
    assert again.log_end_offset == 110  # the last batch of ten records was torn
    assert [r["offset"] for r in read_all(again)] == list(range(110))
    assert append_rolling(again, records(110, 1)).base_offset == 110


def test_flipped_byte_in_tail_drops_that_batch_and_later(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    sizes = [h.size_bytes for h in log.batches(100)]
    log.abandon()
    seg = last_segment(tmp_path / "p")
    data = bytearray(seg.read_bytes())
    data[len(data) - sizes[1] - sizes[0] // 2] ^= 0x40  # inside the batch of offsets 100..109
    seg.write_bytes(bytes(data))
    again = open_log(tmp_path / "p", segment_bytes=4500)
    assert again.log_end_offset == 100
    assert [r["offset"] for r in read_all(again)] == list(range(100))


def test_missing_or_garbage_index_files_are_rebuilt(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    log.close()
    indexes = sorted((tmp_path / "p").glob("*.index"))
    indexes[0].unlink()
    indexes[1].write_bytes(b"\xff" * 16)  # points far past the segment
    for t in (tmp_path / "p").glob("*.timeindex"):
        t.write_bytes(b"\x01" * 5)
    again = open_log(tmp_path / "p", segment_bytes=4500)
    assert [r["offset"] for r in read_all(again)] == list(range(120))
    for start in (0, 33, 57, 99):
        assert read_all(again, start)[0]["offset"] == start
    assert again.offset_for_timestamp(1000 + 77) == 77
    # Rewritten whole (an offset index without entries has no file: one per 4,096 bytes).
    assert all(t.stat().st_size % 12 == 0 for t in (tmp_path / "p").glob("*.timeindex"))


def test_unsynced_crash_keeps_every_intact_batch(tmp_path: Path) -> None:
    log = filled(tmp_path / "p")
    log.sync()
    append_rolling(log, records(120, 5))
    log.abandon()  # killed: the page cache still has everything
    again = open_log(tmp_path / "p", segment_bytes=4500)
    assert again.log_end_offset == 125


def test_garbage_only_segment_recovers_empty(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / "00000000000000000000.log").write_bytes(b"\x00\x00\x00\x03abc")
    log = PartitionLog.open(d, open_log(tmp_path / "q")._config)
    assert (log.log_end_offset, log.size_bytes) == (0, 0)
