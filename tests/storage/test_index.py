"""Offset and time index lookups, file round trips, and rejection of inconsistent files."""

from __future__ import annotations

from pathlib import Path

from raftka.storage.index import NO_TIMESTAMP, OffsetIndex, TimeIndex


def test_offset_index_finds_last_entry_at_or_before(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "x.index", base_offset=100)
    assert idx.lookup(150) == 0  # empty: scan from the start
    for offset, pos in [(110, 4096), (130, 8200), (170, 12300)]:
        idx.append(offset, pos)
    assert [idx.lookup(o) for o in (100, 109, 110, 129, 130, 169, 170, 10**6)] == [
        0, 0, 4096, 4096, 8200, 8200, 12300, 12300,
    ]  # fmt: skip
    idx.truncate_from_position(8200)
    assert (len(idx), idx.lookup(10**6)) == (1, 4096)


def test_offset_index_file_round_trip_and_rejects_bad_files(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "x.index", base_offset=5)
    idx.append(7, 100)
    idx.append(9, 200)
    idx.write()
    again = OffsetIndex(tmp_path / "x.index", base_offset=5)
    assert again.load(segment_size=300) and again.lookup(9) == 200
    assert not again.load(segment_size=200)  # points past the segment's end
    (tmp_path / "x.index").write_bytes(b"\x00" * 7)  # torn entry
    assert not again.load(segment_size=300) and len(again) == 0
    assert not OffsetIndex(tmp_path / "missing.index", 0).load(10)


def test_time_index_names_first_batch_reaching_a_timestamp(tmp_path: Path) -> None:
    idx = TimeIndex(tmp_path / "x.timeindex", base_offset=0)
    assert idx.max_timestamp == NO_TIMESTAMP and idx.lookup(0) is None
    for ts, base in [(10, 0), (5, 3), (20, 6), (20, 9), (30, 12)]:
        idx.maybe_append(ts, base)
    assert len(idx) == 3  # only batches that raise the max are recorded
    assert [idx.lookup(t) for t in (0, 10, 11, 20, 21, 30, 31)] == [0, 0, 6, 6, 12, 12, None]
    idx.write()
    again = TimeIndex(tmp_path / "x.timeindex", base_offset=0)
    assert again.load() and again.lookup(15) == 6
    again.truncate_from_offset(6)
    assert again.max_timestamp == 10
