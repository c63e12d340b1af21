"""PartitionLog behaviour: appends, read limits, ranges, timestamps, retention, truncation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.storage.batch import build_fragments, encode_batch, split_batches
from raftka.storage.errors import (
    CorruptBatchError,
    LogClosedError,
    OffsetOutOfRangeError,
    SegmentFullError,
    UnexpectedAppendOffsetError,
)
from raftka.storage.log import LogConfig, PartitionLog

from .helpers import (
    append_fetched,
    append_rolling,
    apply_retention,
    body,
    decode,
    open_log,
    read_all,
    records,
)


@pytest.fixture
def log(tmp_path: Path) -> PartitionLog:
    # ten batches of ten records, ~100 bytes each, three segments of ~4 batches
    log = open_log(tmp_path / "p", segment_bytes=4500, index_interval_bytes=1000)
    for b in range(10):
        append_rolling(log, records(b * 10, 10))
    return log


def offsets(log: PartitionLog, offset: int, **limits: int) -> list[int]:
    r = log.read(offset, **{"max_bytes": 1 << 30, "max_records": 1 << 30, **limits})
    got = [int(rec["offset"]) for rec in decode(r.records_json)] if r.records_json else []  # type: ignore[call-overload]
    assert r.record_count == len(got)
    assert r.next_offset == (got[-1] + 1 if got else offset)
    return got


def test_append_assigns_offsets_and_rolls_segments(log: PartitionLog, tmp_path: Path) -> None:
    assert (log.log_start_offset, log.log_end_offset) == (0, 100)
    names = sorted(p.name for p in (tmp_path / "p").glob("*.log"))
    assert len(names) >= 3 and names[0] == "00000000000000000000.log"
    assert all(len(n) == len("00000000000000000000.log") for n in names)
    assert log.size_bytes == sum(p.stat().st_size for p in (tmp_path / "p").glob("*.log"))
    info = append_rolling(log, records(100, 3, ts=50_000))
    assert (info.base_offset, info.last_offset, info.max_timestamp) == (100, 102, 50_102)
    assert [r["offset"] for r in read_all(log)] == list(range(103))
    rec = read_all(log, 101)[0]
    assert rec == {
        "offset": 101,
        "timestamp": 50_101,
        "key": "k101",
        "value": {"n": 101, "pad": ""},
        "headers": {},
    }


@pytest.mark.parametrize(
    ("offset", "limits", "expected"),
    [
        (0, {}, list(range(100))),
        (37, {}, list(range(37, 100))),
        (37, {"max_records": 5}, list(range(37, 42))),
        (37, {"max_records": 20}, list(range(37, 57))),  # crosses batches
        (35, {"max_records": 50}, list(range(35, 85))),  # crosses segments
        (37, {"max_offset": 45}, list(range(37, 45))),
        (37, {"max_offset": 37}, []),
        (37, {"max_offset": 10}, []),
        (37, {"max_offset": 1000}, list(range(37, 100))),
        (37, {"max_bytes": 1}, [37]),  # the first record always goes
        (37, {"max_bytes": 0}, [37]),
        (37, {"max_records": 0}, []),
        (100, {}, []),
        (99, {}, [99]),
    ],
)
def test_read_limits(
    log: PartitionLog, offset: int, limits: dict[str, int], expected: list[int]
) -> None:
    assert offsets(log, offset, **limits) == expected


def test_read_max_bytes_counts_fragments_and_commas(log: PartitionLog) -> None:
    one = log.read(40, max_bytes=1 << 20, max_records=1).records_json
    two = log.read(40, max_bytes=1 << 20, max_records=2).records_json
    assert offsets(log, 40, max_bytes=len(two)) == [40, 41]
    assert offsets(log, 40, max_bytes=len(two) - 1) == [40]
    assert offsets(log, 40, max_bytes=len(one)) == [40]
    whole = log.read(40, max_bytes=1 << 20, max_records=30).records_json
    assert offsets(log, 40, max_bytes=len(whole)) == list(range(40, 70))
    for budget in range(0, len(whole), 97):
        r = log.read(40, max_bytes=budget, max_records=1000)
        assert len(r.records_json) <= max(budget, len(one))


@pytest.mark.parametrize("offset", [-1, 101, 10**9])
def test_read_outside_the_log_raises(log: PartitionLog, offset: int) -> None:
    with pytest.raises(OffsetOutOfRangeError) as err:
        log.read(offset, max_bytes=100, max_records=1)
    assert (err.value.offset, err.value.log_start_offset, err.value.log_end_offset) == (
        offset,
        0,
        100,
    )


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=300)
    # timestamps out of order inside batches: first offset at or after T, not the smallest ts
    append_rolling(log, [(100, body(0)), (300, body(1)), (200, body(2))])
    append_rolling(log, [(250, body(3)), (400, body(4))])
    append_rolling(log, [(50, body(5))])
    expected = {0: 0, 100: 0, 101: 1, 300: 1, 301: 4, 400: 4, 401: None}
    assert {ts: log.offset_for_timestamp(ts) for ts in expected} == expected
    assert len(list((tmp_path / "p").glob("*.log"))) == 3


def test_retention_by_time_deletes_old_segments_only(log: PartitionLog) -> None:
    cfg = LogConfig(segment_bytes=4500, retention_ms=1000)
    log.close()
    log = PartitionLog.open(log.directory, cfg)
    segments_before = len(list(log.directory.glob("*.log")))
    # records of batch b have ts 1000 + 10b .. 1000 + 10b + 9
    assert apply_retention(log, now_ms=1000 + 1000) == 0
    deleted = apply_retention(log, now_ms=1040 + 1000)  # first segment's max ts < 1040
    assert deleted == 1 and log.log_start_offset > 0
    start = log.log_start_offset
    with pytest.raises(OffsetOutOfRangeError):
        log.read(start - 1, max_bytes=100, max_records=1)
    assert read_all(log)[0]["offset"] == start
    assert apply_retention(log, now_ms=10**15) == segments_before - 2  # never the active one
    assert len(list(log.directory.glob("*.log"))) == 1
    start = log.log_start_offset
    log.close()
    assert PartitionLog.open(log.directory, cfg).log_start_offset == start


def test_retention_by_bytes_keeps_size_under_limit(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=2000, retention_bytes=5000)
    for b in range(30):
        append_rolling(log, records(b * 5, 5))
    deleted = apply_retention(log, now_ms=0)
    assert deleted > 0 and log.size_bytes <= 5000
    assert log.log_start_offset == int(sorted(log.directory.glob("*.log"))[0].stem)
    assert [r["offset"] for r in read_all(log)] == list(range(log.log_start_offset, 150))
    assert apply_retention(log, now_ms=0) == 0


def test_truncate_inside_a_batch_removes_the_whole_batch(log: PartitionLog) -> None:
    # batches hold offsets 40..49, 50..59 and so on: 45 is inside one
    assert log.truncate_to(45) == 40
    assert log.log_end_offset == 40
    assert [r["offset"] for r in read_all(log)] == list(range(40))
    assert [h.base_offset for h in log.batches(30)] == [30]
    assert log.offset_for_timestamp(1000 + 40) is None
    assert log.offset_for_timestamp(1000 + 39) == 39
    assert log.append(records(40, 2)).base_offset == 40
    log.close()
    again = open_log(log.directory, segment_bytes=4500)
    assert [r["offset"] for r in read_all(again)] == list(range(42))


def segment_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.log"))}


def test_truncation_keeps_remaining_batches_byte_identical(log: PartitionLog) -> None:
    before = segment_files(log.directory)
    assert log.truncate_to(73) == 70
    after = segment_files(log.directory)
    # Only cut or deleted: every remaining file is a prefix of what it was.
    assert after and all(before[name][: len(data)] == data for name, data in after.items())
    names = sorted(after)
    assert all(after[name] == before[name] for name in names[:-1])
    assert sum(h.record_count for h in log.batches()) == 70


def test_truncate_to_segment_boundary_and_beyond_end(log: PartitionLog) -> None:
    bases = sorted(int(p.stem) for p in log.directory.glob("*.log"))
    assert log.truncate_to(bases[1]) == bases[1]
    assert log.log_end_offset == bases[1]
    assert len(list(log.directory.glob("*.log"))) == 1  # segments at or after it are deleted
    assert log.truncate_to(10**6) == bases[1]  # beyond the end: nothing to do
    assert log.log_end_offset == bases[1]
    assert log.truncate_to(0) == 0
    assert (log.log_end_offset, read_all(log)) == (0, [])


def test_truncate_fully_and_start_at(log: PartitionLog) -> None:
    log.truncate_fully_and_start_at(5000)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (5000, 5000, 0)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, max_bytes=10, max_records=1)
    log.append(records(5000, 2))
    log.close()
    again = open_log(log.directory)
    assert (again.log_start_offset, again.log_end_offset) == (5000, 5002)


def leader_batches(base: int, counts: list[int], epoch: int = 2) -> bytes:
    """Batches of these record counts from `base` on, back to back, as a leader sends them."""
    batches = []
    for count in counts:
        frags = build_fragments(base, records(base, count))
        batches.append(
            encode_batch(base, frags, first_timestamp=1, max_timestamp=3, leader_epoch=epoch)
        )
        base += count
    return b"".join(batches)


def test_fetched_batches_are_checked_before_any_is_written(log: PartitionLog) -> None:
    good = leader_batches(100, [3])
    with pytest.raises(CorruptBatchError):
        append_fetched(log, good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(UnexpectedAppendOffsetError):
        append_fetched(log, leader_batches(101, [3]))
    gap = leader_batches(100, [3]) + leader_batches(104, [3])
    with pytest.raises(UnexpectedAppendOffsetError):
        append_fetched(log, gap)
    headers = [h for h, _ in split_batches(good)]
    with pytest.raises(ValueError):
        log.append_batches(good[:-1], headers)
    assert log.log_end_offset == 100
    append_fetched(log, good)
    assert [h.leader_epoch for h in log.batches(100)] == [2]
    assert [r["offset"] for r in read_all(log, 99)] == [99, 100, 101, 102]


def test_fetched_batches_go_in_with_one_write_up_to_the_segments_end(
    log: PartitionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = leader_batches(100, [10] * 6)  # ~380 bytes each; the fixture's segments hold 4,500
    headers = [h for h, _ in split_batches(data)]
    writes = []
    real_write = os.write

    def counting_write(fd: int, buf: bytes | memoryview) -> int:
        writes.append(len(buf))
        return real_write(fd, buf)

    monkeypatch.setattr(os, "write", counting_write)
    taken = log.append_batches(data, headers)
    assert 0 < taken < len(headers)  # the active segment is full after those
    taken_bytes = sum(h.size_bytes for h in headers[:taken])
    assert writes == [taken_bytes]
    with pytest.raises(SegmentFullError):
        log.append_batches(data[taken_bytes:], headers[taken:])
    log.roll()
    writes.clear()
    assert log.append_batches(data[taken_bytes:], headers[taken:]) == len(headers) - taken
    assert writes == [len(data) - taken_bytes]
    assert offsets(log, 100) == list(range(100, 160))


def test_batches_lists_headers_from_an_offset(log: PartitionLog) -> None:
    assert [h.base_offset for h in log.batches()] == list(range(0, 100, 10))
    assert [h.base_offset for h in log.batches(55)] == [50, 60, 70, 80, 90]


def test_closed_log_refuses_use(log: PartitionLog) -> None:
    log.close()
    log.close()  # idempotent
    with pytest.raises(LogClosedError):
        log.append(records(0, 1))
    with pytest.raises(LogClosedError):
        log.read(0, max_bytes=1, max_records=1)
    with pytest.raises(LogClosedError):
        log.sync()


def test_delete_removes_directory(log: PartitionLog) -> None:
    log.delete()
    assert not log.directory.exists()
