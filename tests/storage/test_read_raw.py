"""Raw reads for followers: the leader's stored batches byte for byte, whole batches only,
and split_batches, which verifies them on the follower's side before append_batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.storage.batch import BatchHeader, split_batches
from raftka.storage.errors import CorruptBatchError, OffsetOutOfRangeError
from raftka.storage.log import PartitionLog

from .helpers import append_fetched, append_rolling, apply_retention, open_log, records

SEGMENT_BYTES = 4500
FOLLOWER_FETCH_BYTES = 2000  # about two batches of the fixture per fetch
BIG_READ_BYTES = 64 << 10


@pytest.fixture
def log(tmp_path: Path) -> PartitionLog:
    # ten batches of ten records (~850 bytes each), several segments
    log = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES, index_interval_bytes=1000)
    for b in range(10):
        append_rolling(log, records(b * 10, 10), leader_epoch=b // 4)
    return log


def stored_bytes(log: PartitionLog) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(log.directory.glob("*.log")))


def expected_batches(log: PartitionLog, offset: int, max_bytes: int) -> list[BatchHeader]:
    """Brute force: from the batch holding offset, whole batches within max_bytes, >= 1."""
    taken: list[BatchHeader] = []
    for h in log.batches(offset):
        if taken and sum(t.size_bytes for t in taken) + h.size_bytes > max_bytes:
            break
        taken.append(h)
    return taken


@pytest.mark.parametrize("offset", [0, 5, 9, 10, 37, 40, 55, 99])
@pytest.mark.parametrize("batches_worth", [0, 0.5, 1, 1.5, 2, 3.9, 4, 7, 100])
def test_read_raw_returns_whole_stored_batches_within_max_bytes(
    log: PartitionLog, offset: int, batches_worth: float
) -> None:
    size = next(log.batches()).size_bytes
    max_bytes = int(batches_worth * size)
    data = log.read_raw(offset, max_bytes)
    expected = expected_batches(log, offset, max_bytes)
    got = split_batches(data)
    assert [h for h, _ in got] == expected
    # byte for byte what the segment files hold, from the batch holding `offset`
    stored = stored_bytes(log)
    start = sum(h.size_bytes for h in log.batches() if h.last_offset < offset)
    assert data == stored[start : start + len(data)]
    assert len(data) <= max_bytes or len(got) == 1  # only the first may exceed the budget


def test_read_raw_crosses_segments_and_ends_at_the_log_end(log: PartitionLog) -> None:
    assert len(list(log.directory.glob("*.log"))) >= 3
    assert log.read_raw(0, 1 << 30) == stored_bytes(log)
    assert log.read_raw(log.log_end_offset, 1 << 20) == b""


def test_read_raw_outside_the_log_raises(log: PartitionLog) -> None:
    for offset in (-1, log.log_end_offset + 1):
        with pytest.raises(OffsetOutOfRangeError):
            log.read_raw(offset, 1 << 20)
    log.close()
    log = open_log(log.directory, segment_bytes=SEGMENT_BYTES, retention_bytes=1)
    apply_retention(log, now_ms=0)
    with pytest.raises(OffsetOutOfRangeError):
        log.read_raw(log.log_start_offset - 1, 1 << 20)
    assert split_batches(log.read_raw(log.log_start_offset, 1 << 20))[0][0].base_offset == (
        log.log_start_offset
    )


def test_read_raw_gives_a_batch_bigger_than_max_bytes_whole(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES)
    append_rolling(log, records(0, 1))
    append_rolling(log, records(1, 200, pad=100))  # ~40 KB: bigger than the read-ahead
    append_rolling(log, records(201, 1))
    big = log.read_raw(50, 10)
    assert [h.base_offset for h, _ in split_batches(big)] == [1]
    assert big == stored_bytes(log)[len(log.read_raw(0, 1)) :][: len(big)]


def test_read_raw_reads_with_one_pread_and_never_the_batch_past_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(tmp_path / "p")  # one segment, the default 4 KiB index interval
    for k in range(2000):
        append_rolling(log, records(k, 1))  # ~120-byte batches
    calls: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        calls.append(length)
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    data = log.read_raw(1234, BIG_READ_BYTES)
    assert len(calls) == 1
    assert 0 < BIG_READ_BYTES - len(data) < next(log.batches()).size_bytes


def test_a_follower_copying_read_raw_holds_the_leaders_bytes(
    log: PartitionLog, tmp_path: Path
) -> None:
    follower = open_log(tmp_path / "f", segment_bytes=SEGMENT_BYTES, index_interval_bytes=1000)
    while follower.log_end_offset < log.log_end_offset:
        fetched = log.read_raw(follower.log_end_offset, FOLLOWER_FETCH_BYTES)
        append_fetched(follower, fetched)
    assert stored_bytes(follower) == stored_bytes(log)
    assert follower.epoch_entries() == log.epoch_entries()


def test_split_batches_refuses_bad_or_partial_batches(log: PartitionLog) -> None:
    data = log.read_raw(0, 3000)
    assert len(split_batches(data)) == 3 and split_batches(b"") == []
    for cut in (1, 60, len(data) - 1):
        with pytest.raises(CorruptBatchError):
            split_batches(data[:cut])  # a partial batch at the end
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    with pytest.raises(CorruptBatchError):
        split_batches(flipped)
