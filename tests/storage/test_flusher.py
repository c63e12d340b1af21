"""LogFlusher: ALWAYS shares fsyncs between concurrent waiters, BATCH syncs dirty logs."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from raftka.storage.flusher import FsyncPolicy, LogFlusher
from raftka.storage.log import PartitionLog
from tests.waiting import eventually

from .helpers import open_log, records


class CountingLog:
    """Wraps PartitionLog.sync to count fsyncs and optionally slow them down."""

    def __init__(self, log: PartitionLog, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._sync = log.sync

        def sync() -> None:
            with self._lock:
                self.calls += 1
            time.sleep(self.delay_s)
            self._sync()

        log.sync = sync


@pytest.fixture
def log(tmp_path: Path) -> PartitionLog:
    return open_log(tmp_path / "p")


async def test_always_concurrent_waiters_share_one_fsync(log: PartitionLog) -> None:
    counter = CountingLog(log)
    flusher = LogFlusher(FsyncPolicy.ALWAYS, interval_ms=50)
    flusher.start()
    for i in range(20):
        log.append(records(i, 1))
    await asyncio.gather(*(flusher.wait_durable(log) for _ in range(20)))
    assert counter.calls == 1
    await flusher.stop()


async def test_always_one_fsync_covers_every_batch_waiting_for_it(log: PartitionLog) -> None:
    flusher = LogFlusher(FsyncPolicy.ALWAYS, interval_ms=50)
    covered: list[int] = []
    sync = log.sync

    def recording_sync() -> None:
        covered.append(log.log_end_offset)  # what this fsync is sure to cover
        sync()

    log.sync = recording_sync

    async def produce(i: int) -> int:
        info = log.append(records(i, 3))
        await flusher.wait_durable(log)
        return info.last_offset

    last_offsets = await asyncio.gather(*(produce(i) for i in range(32)))
    assert len(covered) == 1 and covered[0] > max(last_offsets)
    await flusher.stop()


async def test_always_waiter_arriving_during_fsync_gets_a_later_fsync(log: PartitionLog) -> None:
    counter = CountingLog(log, delay_s=0.05)
    flusher = LogFlusher(FsyncPolicy.ALWAYS, interval_ms=50)
    first = asyncio.create_task(flusher.wait_durable(log))
    await eventually(lambda: counter.calls == 1, "the first fsync to start")
    # these arrive while the first fsync runs: it must not count for them
    late = [asyncio.create_task(flusher.wait_durable(log)) for _ in range(5)]
    await asyncio.gather(first, *late)
    assert counter.calls == 2
    await flusher.stop()


async def test_always_cancelled_waiter_does_not_break_the_round(log: PartitionLog) -> None:
    counter = CountingLog(log, delay_s=0.02)
    flusher = LogFlusher(FsyncPolicy.ALWAYS, interval_ms=50)
    doomed = asyncio.create_task(flusher.wait_durable(log))
    kept = asyncio.create_task(flusher.wait_durable(log))
    await asyncio.sleep(0)
    doomed.cancel()
    await kept
    assert counter.calls == 1 and doomed.cancelled()
    await flusher.stop()


async def test_always_propagates_sync_errors_to_waiters(log: PartitionLog) -> None:
    flusher = LogFlusher(FsyncPolicy.ALWAYS, interval_ms=50)
    log.close()
    with pytest.raises(Exception, match="closed"):
        await flusher.wait_durable(log)
    await flusher.stop()


async def test_batch_syncs_dirty_logs_within_a_few_intervals(tmp_path: Path) -> None:
    logs = [open_log(tmp_path / f"p{k}") for k in range(3)]
    counters = [CountingLog(lg) for lg in logs]
    flusher = LogFlusher(FsyncPolicy.BATCH, interval_ms=20)
    flusher.start()
    for lg in logs[:2]:
        lg.append(records(0, 1))
        flusher.mark_dirty(lg)
    await flusher.wait_durable(logs[0])  # returns at once in BATCH mode
    await eventually(lambda: all(c.calls >= 1 for c in counters[:2]), "dirty logs to be synced")
    assert counters[2].calls == 0  # never written, never synced
    await flusher.stop()


async def test_stop_syncs_what_is_still_dirty(log: PartitionLog) -> None:
    counter = CountingLog(log)
    flusher = LogFlusher(FsyncPolicy.BATCH, interval_ms=60_000)
    flusher.start()
    log.append(records(0, 1))
    flusher.mark_dirty(log)
    await flusher.stop()
    assert counter.calls == 1


async def test_never_does_not_sync(log: PartitionLog) -> None:
    counter = CountingLog(log)
    flusher = LogFlusher(FsyncPolicy.NEVER, interval_ms=10)
    flusher.start()
    flusher.mark_dirty(log)
    await flusher.wait_durable(log)
    await flusher.stop()
    assert counter.calls == 0
