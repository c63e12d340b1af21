"""PartitionLog against a plain list model, with closes, reopens and simulated crashes.

A crash is an abandoned log (no close) whose active segment is then cut at a random
byte, or has a random byte flipped, beyond what the last fsync covered. After reopen
the log must equal a prefix of the model that keeps every synced batch.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raftka.storage.log import LogConfig, PartitionLog

from .helpers import append_rolling, apply_retention, body


def fragment(offset: int, ts: int, b: bytes) -> bytes:
    return b'{"offset":%d,"timestamp":%d,' % (offset, ts) + b + b"}"


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="raftka-model-")) / "p"
        self.start = 0
        self.fragments: list[bytes] = []  # offsets start .. start + len - 1
        self.bases: list[int] = []  # base offset of each batch in the log, in order
        self.synced_end = 0  # every offset below this was fsynced
        self.synced_file: tuple[str, int] = ("", 0)  # active segment and its synced size

    @property
    def end(self) -> int:
        return self.start + len(self.fragments)

    @initialize(
        segment_bytes=st.integers(200, 4000),
        retention_bytes=st.none() | st.integers(0, 6000),
        index_interval_bytes=st.integers(1, 2000),
    )
    def open_log(
        self, segment_bytes: int, retention_bytes: int | None, index_interval_bytes: int
    ) -> None:
        self.config = LogConfig(
            segment_bytes=segment_bytes,
            retention_ms=None,
            retention_bytes=retention_bytes,
            index_interval_bytes=index_interval_bytes,
        )
        self.log = PartitionLog.open(self.dir, self.config)
        self.mark_synced()

    def teardown(self) -> None:
        if hasattr(self, "log"):
            self.log.abandon()
        shutil.rmtree(self.dir.parent, ignore_errors=True)

    def active_file(self) -> Path:
        return sorted(self.dir.glob("*.log"))[-1]

    def mark_synced(self) -> None:
        self.synced_end = self.end
        active = self.active_file()
        self.synced_file = (active.name, active.stat().st_size)

    # ---- operations ------------------------------------------------------------------

    @rule(
        batch=st.lists(
            st.tuples(st.integers(0, 10**6), st.integers(0, 150)), min_size=1, max_size=12
        )
    )
    def append(self, batch: list[tuple[int, int]]) -> None:
        records = [(ts, body(k, pad)) for k, (ts, pad) in enumerate(batch)]
        info = append_rolling(self.log, records)
        assert info.base_offset == self.end
        self.bases.append(info.base_offset)
        self.fragments += [fragment(self.end + k, ts, b) for k, (ts, b) in enumerate(records)]
        assert info.last_offset == self.end - 1

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end), label="offset")
        max_bytes = data.draw(st.integers(0, 3000), label="max_bytes")
        max_records = data.draw(st.integers(0, 40), label="max_records")
        max_offset = data.draw(
            st.none() | st.integers(self.start, self.end + 2), label="max_offset"
        )
        got = self.log.read(
            offset, max_bytes=max_bytes, max_records=max_records, max_offset=max_offset
        )
        limit = self.end if max_offset is None else min(max_offset, self.end)
        expected: list[bytes] = []
        size = 0
        for off in range(offset, limit):
            if len(expected) >= max_records:
                break
            frag = self.fragments[off - self.start]
            grown = size + len(frag) + (1 if expected else 0)
            if expected and grown > max_bytes:
                break
            expected.append(frag)
            size = grown
        assert got.records_json == b",".join(expected)
        assert (got.record_count, got.next_offset) == (len(expected), offset + len(expected))

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end + 1))
        if offset < self.end:
            # the batch holding `offset` goes whole
            offset = max(b for b in self.bases if b <= offset)
            self.bases = [b for b in self.bases if b < offset]
        assert self.log.truncate_to(offset) == min(offset, self.end)
        del self.fragments[offset - self.start :]
        self.mark_synced()  # truncation is durable on return

    @rule()
    def retention(self) -> None:
        before = self.log.size_bytes
        deleted = apply_retention(self.log, now_ms=0)
        new_start = self.log.log_start_offset
        assert new_start >= self.start
        assert (new_start > self.start) == (deleted > 0)
        del self.fragments[: new_start - self.start]
        self.bases = [b for b in self.bases if b >= new_start]
        self.start = new_start
        limit = self.config.retention_bytes
        if limit is None:
            assert deleted == 0
        else:
            assert self.log.size_bytes <= limit or len(list(self.dir.glob("*.log"))) == 1
            assert deleted == 0 or before > limit

    @rule()
    def crash_between_retention_steps(self) -> None:
        detached = self.log.detach_expired_segments(now_ms=0)
        self.log.abandon()
        self.log.delete_segments(detached)  # closed: descriptors only, the files stay
        self.log = PartitionLog.open(self.dir, self.config)
        self.mark_synced()  # open fsyncs what it recovered; the detached segments are back

    @rule()
    def sync(self) -> None:
        self.log.sync()
        self.mark_synced()

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(self.dir, self.config)
        self.mark_synced()

    @rule(data=st.data())
    def truncate_fully(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.end, self.end + 1000))
        self.log.truncate_fully_and_start_at(offset)
        self.start, self.fragments, self.bases = offset, [], []
        self.mark_synced()

    @precondition(lambda self: self.end > self.synced_end)
    @rule(data=st.data(), flip=st.booleans())
    def crash(self, data: st.DataObject, flip: bool) -> None:
        self.log.abandon()
        active = self.active_file()
        size = active.stat().st_size
        synced_size = self.synced_file[1] if active.name == self.synced_file[0] else 0
        # a roll fsyncs the segment it leaves, so everything below the active one is durable
        durable_end = max(self.synced_end, int(active.stem))
        if flip and size > synced_size:
            where = data.draw(st.integers(synced_size, size - 1), label="flip_at")
            raw = bytearray(active.read_bytes())
            raw[where] ^= data.draw(st.integers(1, 255), label="xor")
            active.write_bytes(bytes(raw))
        else:
            cut = data.draw(st.integers(synced_size, size), label="cut_at")
            with active.open("r+b") as f:
                f.truncate(cut)
        self.log = PartitionLog.open(self.dir, self.config)
        kept = self.log.log_end_offset - self.start
        assert durable_end <= self.log.log_end_offset <= self.end
        del self.fragments[kept:]
        self.bases = [b for b in self.bases if b < self.log.log_end_offset]
        self.mark_synced()

    # ---- invariants ------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "log"):
            return
        assert (self.log.log_start_offset, self.log.log_end_offset) == (self.start, self.end)
        everything = self.log.read(self.start, max_bytes=1 << 30, max_records=1 << 30)
        assert everything.records_json == b",".join(self.fragments)
        on_disk = sum(p.stat().st_size for p in self.dir.glob("*.log"))
        assert self.log.size_bytes == on_disk
        headers = list(self.log.batches(self.start))
        assert sum(h.record_count for h in headers) >= len(self.fragments)
        assert all(
            a.next_offset == b.base_offset for a, b in zip(headers, headers[1:], strict=False)
        )
        assert [h.base_offset for h in headers] == self.bases


TestLogModel = LogModel.TestCase
