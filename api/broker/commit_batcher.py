"""Offset commits, many to a metadata log entry.

A commit per log entry would cap commits at what the Raft log takes in entries per
second; here every commit that arrives while one entry is being committed waits for
the next, and that one carries them all (group commit). One entry is in flight at a
time (measured: four in flight made entries smaller and cost more CPU, for the same
commits/s), and each is submitted once, never resubmitted (a failure fails its
commits, which the client retries with its latest offsets): so entries apply in the
order they were made, and an older commit never lands after a newer one.
It never validates a commit: the state machine does, per commit, when the entry applies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable

from raftka.metadata.commands import CommitOffsets, OffsetCommit
from raftka.metadata.errors import CoordinatorNotAvailable, RaftkaError, error_for_code
from raftka.metadata.events import OffsetsCommitted
from raftka.metadata.state import Applied

MAX_PENDING_COMMITS = 10_000  # beyond this a commit is refused (503) instead of queued
# Offsets per log entry: ~30 bytes each as JSON, compressed several-fold, so an entry
# stays well below pysyncobj's 64 KiB limit (commands.MAX_COMMAND_TEXT_CHARS).
MAX_OFFSETS_PER_ENTRY = 2_000

# Submits an entry once, never again (Broker.submit with resubmit=False).
Submit = Callable[[CommitOffsets], Awaitable[Applied]]


class OffsetCommitBatcher:
    def __init__(self, submit: Submit, coordinator: int) -> None:
        self._submit = submit
        self._coordinator = coordinator
        self._pending: collections.deque[tuple[OffsetCommit, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(CoordinatorNotAvailable("the broker is stopping"))
        self._pending.clear()

    async def commit(self, commit: OffsetCommit) -> None:
        """Returns once stored; raises the contract error of a refused commit."""
        if len(self._pending) >= MAX_PENDING_COMMITS:
            raise CoordinatorNotAvailable("too many offset commits are waiting; retry shortly")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((commit, future))
        self._wakeup.set()
        await future

    def _take_batch(self) -> list[tuple[OffsetCommit, asyncio.Future[None]]]:
        batch: list[tuple[OffsetCommit, asyncio.Future[None]]] = []
        offsets = 0
        while self._pending:
            commit = self._pending[0][0]
            if batch and offsets + len(commit.offsets) > MAX_OFFSETS_PER_ENTRY:
                break
            batch.append(self._pending.popleft())
            offsets += len(commit.offsets)
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._commit_batch(self._take_batch())

    async def _commit_batch(self, batch: list[tuple[OffsetCommit, asyncio.Future[None]]]) -> None:
        try:
            applied = await self._submit(
                CommitOffsets(tuple(c for c, _ in batch), coordinator=self._coordinator)
            )
        except RaftkaError as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        results = next(e.results for e in applied.events if isinstance(e, OffsetsCommitted))
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if result:
                code, _, message = result.partition(": ")
                future.set_exception(error_for_code(code, message))
            else:
                future.set_result(None)
