"""A follower's fetch loop from one leader broker, for every partition it follows there.

One long-polled request at a time carries all those partitions (Kafka's replica fetcher
per source broker): the leader answers as soon as any of them has news, so a follower is at
most one round trip behind, and idle partitions cost nothing between answers. What to do
with each partition's answer is decided by `follower.plan_after_fetch` and done by the
replica; this module only sends, receives and loops. The transport (HTTP in the broker, a
simulated network in tests) is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from raftka.metadata.errors import RaftkaError
from raftka.replication.follower import Backoff, plan_after_fetch
from raftka.replication.partition import PartitionReplica
from raftka.replication.protocol import FetchRequest, PartitionAnswer, PartitionFetch
from raftka.storage.disk import is_disk_full
from raftka.storage.errors import StorageError
from raftka.storage.flusher import LogFlusher

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
# (leader broker id, request, timeout in seconds) -> the leader's answers. Raises
# ConnectionError (or a RaftkaError) when the leader cannot be reached.
FetchTransport = Callable[[int, FetchRequest, float], Awaitable[list[PartitionAnswer]]]


class ReplicaFetcher:
    def __init__(
        self,
        *,
        broker_id: int,
        leader_id: int,
        transport: FetchTransport,
        flusher: LogFlusher,
        max_wait_ms: int,
        partition_max_bytes: int,
        response_max_bytes: int,
        backoff_ms: int,
        request_timeout_ms: int,
    ) -> None:
        self.broker_id = broker_id
        self.leader_id = leader_id
        self._transport = transport
        self._flusher = flusher
        self._max_wait_ms = max_wait_ms
        self._partition_max_bytes = partition_max_bytes
        self._response_max_bytes = response_max_bytes
        self._backoff_s = backoff_ms / 1000
        self._timeout_s = (max_wait_ms + request_timeout_ms) / 1000
        self._partitions: dict[PartitionKey, PartitionReplica] = {}
        self._changed = asyncio.Event()
        # A partition joined since the request in flight was built: the leader may hold that
        # request up to max_wait_ms, so it is dropped and a new one sent with the partition
        # (a new partition's first acks=all write waits for its followers' first fetch).
        self._gained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Some partition was left out of the last request: its disk has no room.
        self.waiting_for_disk = False
        self.requests_dropped = 0  # for a partition that joined meanwhile (what tests count)

    def add_partition(self, key: PartitionKey, replica: PartitionReplica) -> None:
        """Fetches `replica` too (or instead of the replica of `key` held before)."""
        if self._partitions.get(key) is not replica:
            self._partitions[key] = replica
            self._changed.set()
            self._gained.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def remove_partition(self, key: PartitionKey) -> None:
        if self._partitions.pop(key, None) is not None:
            self._changed.set()

    def __len__(self) -> int:
        return len(self._partitions)

    def stop(self) -> None:
        self._partitions = {}
        if self._task is not None:
            self._task.cancel()

    async def join(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _request(self) -> tuple[FetchRequest, dict[PartitionKey, tuple[int, int]]]:
        """The next request, and per partition the (fetch offset, leader epoch) it names."""
        positions: dict[PartitionKey, tuple[int, int]] = {}
        partitions = []
        for key, replica in self._partitions.items():
            if not replica.is_follower or replica.role.leader != self.leader_id:
                continue
            if not replica.disk_has_room():
                # Not fetched until the disk has room again: the leader's ISR drops us.
                self.waiting_for_disk = True
                continue
            offset, last_epoch = replica.fetch_position()
            positions[key] = (offset, replica.role.leader_epoch)
            partitions.append(
                PartitionFetch(
                    replica.topic,
                    replica.topic_id,
                    replica.partition,
                    replica.role.leader_epoch,
                    offset,
                    last_epoch,
                )
            )
        request = FetchRequest(
            replica_id=self.broker_id,
            max_wait_ms=self._max_wait_ms,
            max_bytes=self._partition_max_bytes,
            partitions=tuple(partitions),
        )
        return request, positions

    async def _run(self) -> None:
        while True:
            self.waiting_for_disk = False
            request, positions = self._request()
            if not request.partitions and self.waiting_for_disk:
                await self._pause()
                continue
            if not request.partitions:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            self._gained.clear()
            try:
                answers = await self._fetch_unless_gained(request)
                if answers is None:
                    self.requests_dropped += 1
                    continue  # a partition joined: ask again at once, with it
            except (ConnectionError, TimeoutError, RaftkaError, ValueError) as exc:
                log.debug("fetch from broker %d failed: %s", self.leader_id, exc)
                await self._pause()
                continue
            if await self._handle(answers, positions):
                await self._pause()

    async def _fetch_unless_gained(self, request: FetchRequest) -> list[PartitionAnswer] | None:
        """The leader's answers, or None when a partition joined first (the request is then
        dropped: nothing of it was applied, and the leader's answer to it goes nowhere)."""
        fetch = asyncio.ensure_future(self._transport(self.leader_id, request, self._timeout_s))
        gained = asyncio.ensure_future(self._gained.wait())
        try:
            await asyncio.wait((fetch, gained), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gained.cancel()
            if not fetch.done():
                fetch.cancel()
                await asyncio.wait((fetch,))  # its connection is closed before the next one
        return None if fetch.cancelled() else fetch.result()

    async def _handle(
        self, answers: list[PartitionAnswer], positions: dict[PartitionKey, tuple[int, int]]
    ) -> bool:
        """Applies each partition's answer; True when the next request should wait a little
        (some partition must wait for the metadata and none made progress)."""
        progress = False
        backoff = False
        appended = []
        for answer in answers:
            key = (answer.topic, answer.partition)
            replica = self._partitions.get(key)
            position = positions.get(key)
            if replica is None or position is None or not replica.is_follower:
                continue
            sent, epoch = position
            if replica.role.leader != self.leader_id or replica.role.leader_epoch != epoch:
                continue  # the partition moved on meanwhile: the answer speaks for another epoch
            if replica.log_end_offset != sent:
                continue  # the log changed since the request: the answer is for another offset
            step = plan_after_fetch(replica.log, sent, answer.answer)
            if isinstance(step, Backoff):
                log.debug("%s-%d: %s", *key, step.reason)
                backoff = True
                continue
            try:
                moved = await replica.apply_follower_step(step)
            except (StorageError, OSError) as exc:
                if is_disk_full(exc):
                    log.debug("%s-%d: the disk is full: %s", *key, exc)
                else:
                    log.warning("%s-%d: cannot apply the fetched data: %s", *key, exc)
                backoff = True
                continue
            if moved:
                progress = True
                if replica.log_end_offset != sent:
                    appended.append(replica)
        for replica in appended:
            self._flusher.mark_dirty(replica.log)
        # With fsync="always" a follower syncs before its next fetch tells the leader it has
        # the records: an acknowledged batch is then on the disk of every ISR member.
        await asyncio.gather(*(self._flusher.wait_durable(r.log) for r in appended))
        return backoff and not progress

    async def _pause(self) -> None:
        """Back off after an error or an answer with nothing to do, unless the partitions
        changed (a role change is worth a new request at once)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), self._backoff_s)
