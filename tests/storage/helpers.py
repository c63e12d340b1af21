"""Shared helpers for the storage tests: record bodies, appends that roll, decoding reads."""

from __future__ import annotations

from pathlib import Path

import orjson

from raftka.storage.batch import split_batches
from raftka.storage.errors import SegmentFullError
from raftka.storage.log import AppendInfo, LogConfig, PartitionLog

NO_RETENTION = LogConfig(retention_ms=None)


def body(n: int, pad: int = 0) -> bytes:
    return b'"key":"k%d","value":{"n":%d,"pad":"%s"},"headers":{}' % (n, n, b"x" * pad)


def records(first: int, count: int, ts: int = 1_000, pad: int = 0) -> list[tuple[int, bytes]]:
    return [(ts + first + i, body(first + i, pad)) for i in range(count)]


def decode(records_json: bytes) -> list[dict[str, object]]:
    result: list[dict[str, object]] = orjson.loads(b"[" + records_json + b"]")
    return result


def read_all(log: PartitionLog, offset: int | None = None) -> list[dict[str, object]]:
    start = log.log_start_offset if offset is None else offset
    return decode(log.read(start, max_bytes=1 << 40, max_records=1 << 40).records_json)


def open_log(path: Path, **config: int | None) -> PartitionLog:
    settings: dict[str, int | None] = {"retention_ms": None, **config}
    return PartitionLog.open(path, LogConfig(**settings))


def append_rolling(
    log: PartitionLog, batch: list[tuple[int, bytes]], *, leader_epoch: int = 0
) -> AppendInfo:
    """log.append, rolling when the active segment is full (the broker rolls in a thread)."""
    try:
        return log.append(batch, leader_epoch=leader_epoch)
    except SegmentFullError:
        log.roll()
        return log.append(batch, leader_epoch=leader_epoch)


def append_fetched(log: PartitionLog, data: bytes | memoryview) -> None:
    """Appends batches copied from a leader as a follower does: split_batches checks them,
    log.append_batches writes them, rolling when the active segment is full."""
    batches = split_batches(data)
    headers = [header for header, _ in batches]
    view = memoryview(data)
    while headers:
        try:
            taken = log.append_batches(view, headers)
        except SegmentFullError:
            log.roll()
            continue
        view = view[sum(h.size_bytes for h in headers[:taken]) :]
        headers = headers[taken:]


def apply_retention(log: PartitionLog, now_ms: int) -> int:
    """Both retention steps (the broker runs the second in a worker thread)."""
    detached = log.detach_expired_segments(now_ms)
    log.delete_segments(detached)
    return len(detached)
