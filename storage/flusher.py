"""Group commit: when partition logs are fsynced, per the broker's fsync policy.

It owns the dirty set, the background flush task (BATCH) and the shared fsync rounds
that acknowledgements wait on (ALWAYS). fsync runs in a worker thread, never on the
event loop. It must never write to a log, and it never uses a fixed timer to gather
waiters: a round starts on the next loop pass (hot-path.md measured timers to hurt).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

from raftka.storage.errors import LogClosedError
from raftka.storage.log import PartitionLog

_log = logging.getLogger(__name__)


class FsyncPolicy(enum.Enum):
    ALWAYS = "always"  # acknowledged => fsynced
    BATCH = "batch"  # fsynced within about interval_ms of the append
    NEVER = "never"  # the OS decides


class _Rounds:
    """One log's fsync rounds: at most one running and one gathering waiters."""

    __slots__ = ("next", "task")

    def __init__(self) -> None:
        self.next: asyncio.Future[None] | None = None  # the round not yet started
        self.task: asyncio.Task[None] | None = None  # runs rounds while any is wanted


class LogFlusher:
    def __init__(self, policy: FsyncPolicy, interval_ms: int) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        self.policy = policy
        self.interval_ms = interval_ms
        # Bounded by the number of partition logs: a set, not a queue.
        self._dirty: set[PartitionLog] = set()
        self._rounds: dict[PartitionLog, _Rounds] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.policy is FsyncPolicy.BATCH and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_periodically())

    def mark_dirty(self, log: PartitionLog) -> None:
        if self.policy is not FsyncPolicy.NEVER:
            self._dirty.add(log)

    async def wait_durable(self, log: PartitionLog) -> None:
        """ALWAYS: return once an fsync started after this call has covered `log`.

        Callers arriving in the same loop pass share one fsync. Cancelling a waiter
        does not cancel the shared fsync.
        """
        if self.policy is not FsyncPolicy.ALWAYS:
            return
        rounds = self._rounds.get(log)
        if rounds is None:
            rounds = self._rounds[log] = _Rounds()
        if rounds.next is None:
            rounds.next = asyncio.get_running_loop().create_future()
        waiter = rounds.next
        if rounds.task is None:
            # The task's first step runs on the next loop pass, so every handler ready
            # in this pass joins the same round.
            rounds.task = asyncio.get_running_loop().create_task(self._run_rounds(log, rounds))
        await asyncio.shield(waiter)

    async def _run_rounds(self, log: PartitionLog, rounds: _Rounds) -> None:
        loop = asyncio.get_running_loop()
        try:
            while rounds.next is not None:
                waiter, rounds.next = rounds.next, None
                self._dirty.discard(log)
                try:
                    await loop.run_in_executor(None, log.sync)
                except asyncio.CancelledError:
                    waiter.cancel()
                    raise
                except Exception as exc:
                    if not waiter.done():
                        waiter.set_exception(exc)
                else:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            if rounds.next is not None and not rounds.next.done():
                rounds.next.set_exception(LogClosedError("the flusher stopped"))
            rounds.next = None
            rounds.task = None
            if self._rounds.get(log) is rounds:
                del self._rounds[log]

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.interval_ms / 1000)
            await self._flush_dirty()

    async def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _sync_all, list(dirty))

    async def stop(self) -> None:
        """Stop the background task and fsync every log still dirty."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = [r.task for r in self._rounds.values() if r.task is not None]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self._flush_dirty()


def _sync_all(logs: list[PartitionLog]) -> None:
    """One worker-thread job: fsync each log; a log closed since it was marked is skipped."""
    for log in logs:
        try:
            log.sync()
        except LogClosedError:
            pass  # closed logs were fsynced by close(), deleted ones need nothing
        except OSError:
            # fsync failure means the page cache may have dropped data; say so loudly,
            # but keep flushing the other logs.
            _log.exception("fsync of %s failed", log.directory)
