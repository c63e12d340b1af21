"""MemoryLog answers as PartitionLog does: the same operations on both give the same offsets,
epochs, bytes and records, also after a crash that loses what was not fsynced (the real
log's segment file cut back to its last synced size, then reopened). The simulation trusts
MemoryLog only because of these tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.storage.batch import build_fragments, encode_batch, split_batches
from raftka.storage.errors import OffsetOutOfRangeError
from raftka.storage.log import LogConfig, PartitionLog
from raftka.storage.segment import LOG_SUFFIX, segment_name
from tests.replication.memory_log import MemoryLog

CONFIG = LogConfig(retention_ms=None)  # one segment: MemoryLog never rolls
BYTE_LIMITS = (1, 60, 150, 400, 1 << 20)  # one record, a few, a few batches, everything
RECORD_LIMITS = (1, 2, 1000)


def records(count: int, first_ts: int, tag: int) -> list[tuple[int, bytes]]:
    return [(first_ts + k, b'"value":"%d-%d"' % (tag, k)) for k in range(count)]


@contextmanager
def real_log() -> Iterator[PartitionLog]:
    with tempfile.TemporaryDirectory() as tmp:
        log = PartitionLog.open(Path(tmp) / "t-0", CONFIG)
        try:
            yield log
        finally:
            log.abandon()


def assert_same(memory: MemoryLog, real: PartitionLog) -> None:
    start, end = real.log_start_offset, real.log_end_offset
    assert (memory.log_start_offset, memory.log_end_offset) == (start, end)
    assert memory.latest_epoch == real.latest_epoch
    assert memory.epoch_entries() == real.epoch_entries()
    for epoch in range(-1, real.latest_epoch + 2):
        assert memory.end_offset_for_epoch(epoch) == real.end_offset_for_epoch(epoch), epoch
    assert list(memory.batches(start)) == list(real.batches(start))
    sizes = [h.size_bytes for h in real.batches(start)]
    # Exactly one, two, three batches, and a byte less or more: where limits bite.
    exact = {sum(sizes[:k]) + d for k in range(1, 4) for d in (-1, 0, 1)}
    for offset in range(start, end + 1):
        assert list(memory.batches(offset)) == list(real.batches(offset))
        for max_bytes in sorted(exact | set(BYTE_LIMITS)):
            assert memory.read_raw(offset, max_bytes) == real.read_raw(offset, max_bytes)
        for max_bytes in BYTE_LIMITS:
            for max_records in RECORD_LIMITS:
                for max_offset in (None, end - 1, offset + 1):
                    kwargs = {"max_bytes": max_bytes, "max_records": max_records}
                    assert memory.read(offset, max_offset=max_offset, **kwargs) == real.read(
                        offset, max_offset=max_offset, **kwargs
                    )
    for timestamp in (0, 1_005, 1_050, 10**6):
        assert memory.offset_for_timestamp(timestamp) == real.offset_for_timestamp(timestamp)
    for outside in (start - 1, end + 1):
        if outside < 0:
            continue
        with pytest.raises(OffsetOutOfRangeError):
            memory.read_raw(outside, 1 << 20)
        with pytest.raises(OffsetOutOfRangeError):
            real.read_raw(outside, 1 << 20)


# ---- operations, drawn by hypothesis and applied to both logs --------------------------------


@dataclass(frozen=True)
class Append:
    count: int
    epoch_step: int  # added to the latest epoch (an older one is ignored by the cache)
    idempotent: bool


@dataclass(frozen=True)
class AppendBatches:
    """Batches copied from a leader, back to back, of these record counts."""

    counts: tuple[int, ...]
    epoch_step: int


@dataclass(frozen=True)
class AssignEpoch:
    epoch_step: int
    where: float  # between the log start (0.0) and the log end (1.0)


@dataclass(frozen=True)
class TruncateTo:
    where: float  # 1.0 and above: at or past the log end


@dataclass(frozen=True)
class StartAt:
    gap: int  # records past the log end


@dataclass(frozen=True)
class Sync:
    pass


Op = Append | AppendBatches | AssignEpoch | TruncateTo | StartAt | Sync

where = st.floats(0.0, 1.2)
ops = st.one_of(
    st.builds(Append, st.integers(1, 4), st.integers(-1, 2), st.booleans()),
    st.builds(
        AppendBatches,
        st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
        st.integers(0, 2),
    ),
    st.builds(AssignEpoch, st.integers(0, 2), where),
    st.builds(TruncateTo, where),
    st.builds(StartAt, st.integers(0, 3)),
    st.just(Sync()),
)


def _at(log: PartitionLog, fraction: float) -> int:
    start, end = log.log_start_offset, log.log_end_offset
    return start + round(fraction * (end - start))


def apply_op(op: Op, memory: MemoryLog, real: PartitionLog, tag: int) -> None:
    ts = 1_000 + 10 * tag
    if isinstance(op, Append):
        epoch = max(0, real.latest_epoch + op.epoch_step)
        producer = (
            {"producer_id": 7, "producer_epoch": 0, "base_sequence": tag} if op.idempotent else {}
        )
        got = memory.append(records(op.count, ts, tag), leader_epoch=epoch, **producer)
        assert got == real.append(records(op.count, ts, tag), leader_epoch=epoch, **producer)
    elif isinstance(op, AppendBatches):
        base = real.log_end_offset
        epoch = max(0, real.latest_epoch) + op.epoch_step
        batches = []
        for count in op.counts:
            batches.append(
                encode_batch(
                    base,
                    build_fragments(base, records(count, ts, tag)),
                    first_timestamp=ts,
                    max_timestamp=ts + count - 1,
                    leader_epoch=epoch,
                )
            )
            base += count
        data = b"".join(batches)
        headers = [header for header, _ in split_batches(data)]
        assert memory.append_batches(data, headers) == real.append_batches(data, headers)
    elif isinstance(op, AssignEpoch):
        epoch = max(0, real.latest_epoch + op.epoch_step)
        offset = min(_at(real, op.where), real.log_end_offset)
        assert memory.assign_epoch(epoch, offset) == real.assign_epoch(epoch, offset)
    elif isinstance(op, TruncateTo):
        offset = _at(real, op.where)
        assert memory.truncate_to(offset) == real.truncate_to(offset)
    elif isinstance(op, StartAt):
        offset = real.log_end_offset + op.gap
        memory.truncate_fully_and_start_at(offset)
        real.truncate_fully_and_start_at(offset)
    else:
        memory.sync()
        real.sync()


@given(st.lists(ops, max_size=20))
def test_the_same_operations_give_the_same_answers(operations: list[Op]) -> None:
    memory = MemoryLog()
    with real_log() as real:
        assert_same(memory, real)
        for tag, op in enumerate(operations):
            apply_op(op, memory, real, tag)
            assert_same(memory, real)


def _crash_real(real: PartitionLog, memory: MemoryLog, keep_unsynced: int) -> PartitionLog:
    """What a power cut leaves of the real log: its one segment file cut to the durable
    batches plus `keep_unsynced` more (bytes the page cache happened to write back)."""
    directory = real.directory
    kept = memory.stored_batches()[: memory.synced_batches + keep_unsynced]
    size = sum(len(batch) for _header, batch in kept)
    real.abandon()
    path = directory / (segment_name(real.log_start_offset) + LOG_SUFFIX)
    os.truncate(path, size)
    return PartitionLog.open(directory, CONFIG)


@given(st.lists(ops, max_size=20), st.integers(0, 3))
def test_a_crash_keeps_what_was_synced_as_recovery_does(
    operations: list[Op], keep_unsynced: int
) -> None:
    memory = MemoryLog()
    with real_log() as real:
        for tag, op in enumerate(operations):
            apply_op(op, memory, real, tag)
        recovered = _crash_real(real, memory, keep_unsynced)
        try:
            memory = memory.crash(keep_unsynced)
            assert_same(memory, recovered)
            apply_op(Append(2, 1, False), memory, recovered, len(operations))
            assert_same(memory, recovered)
        finally:
            recovered.abandon()


# ---- a few cases spelled out --------------------------------------------------------------


def test_a_crash_loses_the_unsynced_batches_and_the_epochs_they_started() -> None:
    log = MemoryLog()
    log.append(records(2, 1_000, 0), leader_epoch=1)
    log.sync()
    log.append(records(2, 1_000, 1), leader_epoch=3)
    log.append(records(2, 1_000, 2), leader_epoch=3)
    assert (log.synced_batches, log.unsynced_batches) == (1, 2)
    after = log.crash(keep_unsynced=1)
    assert after.log_end_offset == 4
    assert after.end_offset_for_epoch(1) == (1, 2)
    after = after.crash(keep_unsynced=None)  # everything left was durable: nothing goes
    assert after.log_end_offset == 4
    lost = MemoryLog()
    lost.append(records(1, 1_000, 0), leader_epoch=1)
    lost.sync()
    lost.assign_epoch(4, 1)  # a new leader's epoch with no batch yet
    lost.append(records(1, 1_000, 1), leader_epoch=4)
    assert [e.epoch for e in lost.crash().epoch_entries()] == [1]


def test_a_truncation_is_durable_and_a_closed_log_refuses_work() -> None:
    log = MemoryLog()
    for tag in range(3):
        log.append(records(2, 1_000, tag), leader_epoch=1)
    assert log.truncate_to(3) == 2  # the batch holding offset 3 goes whole
    assert log.unsynced_batches == 0
    assert log.crash().log_end_offset == 2
    with pytest.raises(Exception, match="closed"):
        log.append(records(1, 1_000, 9), leader_epoch=1)
