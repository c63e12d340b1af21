"""Raw PartitionLog throughput: appends per fsync policy, then sequential 1 MiB reads.

Run as `python -m raftka.storage.bench [--records N] [--record-size B] [--batch 200]`.
It only measures; it must never be imported by the broker. Data goes to a temporary
directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from raftka.storage.errors import SegmentFullError
from raftka.storage.flusher import FsyncPolicy
from raftka.storage.log import LogConfig, PartitionLog

BATCH_SYNC_INTERVAL_S = 0.050  # `batch`: fsync every 50 ms of appends
READ_MAX_BYTES = 1 << 20  # one fetch
DEFAULT_RECORDS = 200_000
DEFAULT_RECORD_SIZE = 100  # bytes of value text per record
DEFAULT_BATCH = 200
DEFAULT_RUNS = 3


def make_batches(records: int, record_size: int, batch: int) -> list[list[tuple[int, bytes]]]:
    value = b"x" * record_size
    now = int(time.time() * 1000)
    out = []
    for first in range(0, records, batch):
        n = min(batch, records - first)
        out.append(
            [
                (now, b'"key":"user-%d","value":"%s","headers":{}' % (first + i, value))
                for i in range(n)
            ]
        )
    return out


def append_rolling(log: PartitionLog, records: list[tuple[int, bytes]]) -> None:
    """Append, rolling inline when the segment is full (the broker rolls in a worker thread)."""
    try:
        log.append(records)
    except SegmentFullError:
        log.roll()
        log.append(records)


def bench_append(
    directory: Path, batches: list[list[tuple[int, bytes]]], policy: FsyncPolicy
) -> tuple[float, int]:
    """Seconds taken and bytes written appending every batch under `policy`."""
    log = PartitionLog.open(directory, LogConfig(retention_ms=None))
    started = time.perf_counter()
    last_sync = started
    for records in batches:
        append_rolling(log, records)
        if policy is FsyncPolicy.ALWAYS:
            log.sync()
        elif policy is FsyncPolicy.BATCH:
            now = time.perf_counter()
            if now - last_sync >= BATCH_SYNC_INTERVAL_S:
                log.sync()
                last_sync = now
    if policy is FsyncPolicy.BATCH:
        log.sync()
    elapsed = time.perf_counter() - started
    size = log.size_bytes
    log.close()
    return elapsed, size


def bench_read(directory: Path) -> tuple[float, int, int]:
    """Seconds, records and bytes reading the whole log in 1 MiB fetches."""
    log = PartitionLog.open(directory, LogConfig(retention_ms=None))
    offset = log.log_start_offset
    records = size = 0
    started = time.perf_counter()
    while offset < log.log_end_offset:
        r = log.read(offset, max_bytes=READ_MAX_BYTES, max_records=1 << 30)
        offset = r.next_offset
        records += r.record_count
        size += len(r.records_json)
    elapsed = time.perf_counter() - started
    log.close()
    return elapsed, records, size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--record-size", type=int, default=DEFAULT_RECORD_SIZE)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="report the median")
    args = parser.parse_args(argv)
    batches = make_batches(args.records, args.record_size, args.batch)
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="raftka-bench-") as tmp:
        root = Path(tmp)
        for policy in FsyncPolicy:
            runs = []
            for run in range(args.runs):
                runs.append(bench_append(root / f"{policy.value}-{run}", batches, policy))
            elapsed = statistics.median(e for e, _ in runs)
            size = runs[0][1]
            rows.append((f"append, fsync {policy.value}", args.records / elapsed, size / elapsed))
        reads = [bench_read(root / f"never-{run}") for run in range(args.runs)]
        elapsed = statistics.median(e for e, _, _ in reads)
        _, count, size = reads[0]
        rows.append(("read, 1 MiB fetches", count / elapsed, size / elapsed))
    print(
        f"records={args.records} record_size={args.record_size} batch={args.batch} "
        f"median of {args.runs} runs"
    )
    print(f"| {'operation':<22} | {'records/s':>12} | {'MB/s':>8} |")
    print(f"| {'-' * 22} | {'-' * 12}:| {'-' * 8}:|")
    for name, rate, bytes_rate in rows:
        print(f"| {name:<22} | {rate:>12,.0f} | {bytes_rate / 1e6:>8.1f} |")


if __name__ == "__main__":
    main()
