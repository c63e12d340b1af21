"""The asyncio producer: batches records per partition and sends each batch to its leader.

`send` picks the partition (explicit; Kafka's murmur2 of the key, as the broker would;
keyless records stick to one partition per batch, KIP-480) and queues the record. One
sender task per partition waits `linger_ms` or until `batch_records` are queued, then
posts the batch to `POST /v1/topics/{t}/partitions/{p}/records` at the leader it learned
from the metadata, and retries retriable errors (503s, 504, no answer) with backoff,
refreshing the metadata, until `delivery_timeout_ms`.

Idempotence (Kafka's rules, checked by the broker's replication/producer_state.py): a
producer id from `POST /v1/producers`; each batch carries `{"id", "epoch", "sequence"}`
where `sequence` is its first record's per-partition number; a retry resends the SAME
bytes, so the broker answers the original offsets and never writes a batch twice, also
after a leader change. At most one batch per partition is in flight (for every producer:
that also keeps each partition's records in send order). A batch that fails for good
leaves its sequence unknown, so later batches move to a fresh producer id, which the
broker accepts at any sequence. This module never reads a broker's internals: only HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from raftka.client.errors import (
    ClientError,
    ConnectionFailed,
    InvalidProducerEpoch,
    OutOfOrderSequence,
    RaftkaError,
    UnknownPartition,
)
from raftka.client.http import REQUEST_TIMEOUT_S, Backoff, Cluster, Transport
from raftka.client.metadata import Metadata
from raftka.client.records import Headers, encode_record, partition_for

DEFAULT_LINGER_MS = 5
DEFAULT_BATCH_RECORDS = 500
# Kafka's delivery.timeout.ms: how long a record may take from send to acknowledgement.
DEFAULT_DELIVERY_TIMEOUT_MS = 120_000
# Records queued or in flight at most; `send` waits for room past it.
DEFAULT_BUFFER_RECORDS = 100_000
# The broker's batch header stores the sequence as an int32.
MAX_SEQUENCE = 2**31 - 1
ACKS = ("0", "1", "all")

Offset = tuple[int, int | None]


@dataclass
class ProducerStats:
    """Counters of what the producer did (tests and chaos read them)."""

    requests: int = 0
    batches: int = 0
    records: int = 0
    retries: int = 0
    metadata_refreshes: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def count_error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


@dataclass(slots=True)
class _Queued:
    record: dict[str, Any]
    future: asyncio.Future[Offset]


@dataclass(slots=True)
class _PartitionQueue:
    topic: str
    partition: int
    queued: deque[_Queued] = field(default_factory=deque)
    first_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch as sent, and resent unchanged on every retry."""

    topic: str
    partition: int
    futures: Sequence[asyncio.Future[Offset]]
    body: bytes
    deadline: float


class Producer:
    """Sends records to a raftka cluster (asyncio flavour: use it inside a running loop)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        acks: str = "all",
        linger_ms: int = DEFAULT_LINGER_MS,
        batch_records: int = DEFAULT_BATCH_RECORDS,
        idempotent: bool = True,
        delivery_timeout_ms: int = DEFAULT_DELIVERY_TIMEOUT_MS,
        buffer_records: int = DEFAULT_BUFFER_RECORDS,
        token: str | None = None,
        cacert: str | None = None,
    ) -> None:
        acks = str(acks)
        if acks == "-1":
            acks = "all"
        if acks not in ACKS:
            raise ValueError(f"acks must be 0, 1 or all, got {acks!r}")
        if linger_ms < 0 or batch_records < 1 or buffer_records < batch_records:
            raise ValueError("need linger_ms >= 0 and 1 <= batch_records <= buffer_records")
        self.acks = acks
        # acks=0 hears of no write, so no sequence error either: idempotence needs an answer.
        self.idempotent = idempotent and acks != "0"
        self._linger_s = linger_ms / 1000
        self._batch_records = batch_records
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self._transport = Transport(token=token, cacert=cacert)
        self._cluster = Cluster(bootstrap, self._transport)
        self._metadata = Metadata(self._cluster)
        self._queues: dict[tuple[str, int], _PartitionQueue] = {}
        self._sticky: dict[str, int] = {}
        self._room: asyncio.Semaphore | None = None
        self._buffer_records = buffer_records
        self._unfinished: set[asyncio.Future[Offset]] = set()
        self._flushing = 0
        self._closed = False
        self._producer_lock: asyncio.Lock | None = None
        self._producer_id: tuple[int, int] | None = None
        self._sequences: dict[tuple[str, int], int] = {}
        self.stats = ProducerStats()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the public calls --------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> asyncio.Future[Offset]:
        """Queues one record; the future gives `(partition, offset)` once acknowledged
        (offset None with acks=0). Waits while the buffer is full; raises UnknownTopic or
        UnknownPartition at once."""
        if self._closed:
            raise ClientError("the producer is closed")
        record = encode_record(value, key, headers, timestamp)
        info = await self._metadata.topic(topic)
        count = info.partition_count
        if partition is None:
            partition = partition_for(key, count)
            if partition is None:
                partition = self._sticky.setdefault(topic, 0) % count
        elif not 0 <= partition < count:
            raise UnknownPartition(f"{topic!r} has no partition {partition} (it has {count})")
        if self._room is None:
            self._room = asyncio.Semaphore(self._buffer_records)
        await self._room.acquire()
        future: asyncio.Future[Offset] = asyncio.get_running_loop().create_future()
        self._unfinished.add(future)
        future.add_done_callback(self._finished)
        queue = self._queue(topic, partition)
        if not queue.queued:
            queue.first_at = time.monotonic()
        queue.queued.append(_Queued(record, future))
        if len(queue.queued) >= self._batch_records or len(queue.queued) == 1:
            queue.wake.set()
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> Offset:
        return await (await self.send(topic, value, key, headers, partition, timestamp))

    async def flush(self) -> None:
        """Sends everything queued now, without lingering, and waits until each record is
        acknowledged or failed (failures stay in their futures)."""
        pending = list(self._unfinished)
        if not pending:
            return
        self._flushing += 1
        try:
            for queue in self._queues.values():
                queue.wake.set()
            await asyncio.wait(pending)
        finally:
            self._flushing -= 1

    async def close(self) -> None:
        """Flushes, then stops the sender tasks and closes the connections."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._transport.close()

    # -- batching ----------------------------------------------------------------------

    def _finished(self, future: asyncio.Future[Offset]) -> None:
        self._unfinished.discard(future)
        if self._room is not None:
            self._room.release()

    def _queue(self, topic: str, partition: int) -> _PartitionQueue:
        queue = self._queues.get((topic, partition))
        if queue is None:
            queue = self._queues[(topic, partition)] = _PartitionQueue(topic, partition)
            queue.task = asyncio.ensure_future(self._run_partition(queue))
        return queue

    async def _run_partition(self, queue: _PartitionQueue) -> None:
        while True:
            await self._wait_until_ready(queue)
            batch = await self._take_batch(queue)
            await self._deliver(batch)

    async def _wait_until_ready(self, queue: _PartitionQueue) -> None:
        while True:
            timeout: float | None = None
            if queue.queued:
                if len(queue.queued) >= self._batch_records or self._flushing:
                    return
                timeout = queue.first_at + self._linger_s - time.monotonic()
                if timeout <= 0:
                    return
            queue.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.wake.wait(), timeout)

    async def _take_batch(self, queue: _PartitionQueue) -> _Batch:
        count = min(len(queue.queued), self._batch_records)
        taken = [queue.queued.popleft() for _ in range(count)]
        if queue.queued:
            queue.first_at = time.monotonic()
        # Sticky partitioning: the next keyless records of the topic go elsewhere.
        sticky = self._sticky.get(queue.topic)
        if sticky is not None and sticky == queue.partition:
            self._sticky[queue.topic] = sticky + 1
        doc: dict[str, Any] = {"records": [q.record for q in taken]}
        if self.idempotent:
            doc["producer"] = await self._next_sequence(queue.topic, queue.partition, count)
        self.stats.batches += 1
        self.stats.records += count
        return _Batch(
            queue.topic,
            queue.partition,
            [q.future for q in taken],
            orjson.dumps(doc),
            time.monotonic() + self._delivery_timeout_s,
        )

    # -- idempotence -------------------------------------------------------------------

    async def _next_sequence(self, topic: str, partition: int, count: int) -> dict[str, int]:
        if self._producer_lock is None:
            self._producer_lock = asyncio.Lock()
        async with self._producer_lock:
            sequence = self._sequences.get((topic, partition), 0)
            if sequence + count - 1 > MAX_SEQUENCE:
                self._reset_producer_id()
                sequence = 0
            if self._producer_id is None:
                doc = await self._cluster.request(
                    "POST", "/v1/producers", retry_for_s=self._delivery_timeout_s
                )
                self._producer_id = (int(doc["id"]), int(doc["epoch"]))
            producer_id, epoch = self._producer_id
            self._sequences[(topic, partition)] = sequence + count
            return {"id": producer_id, "epoch": epoch, "sequence": sequence}

    def _reset_producer_id(self) -> None:
        """After a batch failed for good: its sequence may or may not be written, so new
        batches start over under a new producer id (one with no state on any broker)."""
        self._producer_id = None
        self._sequences.clear()

    # -- sending -----------------------------------------------------------------------

    async def _deliver(self, batch: _Batch) -> None:
        """Sends the batch until acknowledged or failed for good; settles its futures."""
        backoff = Backoff()
        path = f"/v1/topics/{batch.topic}/partitions/{batch.partition}/records"
        while True:
            remaining = batch.deadline - time.monotonic()
            try:
                url = await self._metadata.leader_url(batch.topic, batch.partition)
                self.stats.requests += 1
                answer = await self._transport.request(
                    "POST",
                    (url or self._cluster.url) + path,
                    body=batch.body,
                    params={"acks": self.acks},
                    timeout_s=min(REQUEST_TIMEOUT_S, max(remaining, 1.0)),
                )
            except RaftkaError as exc:
                self.stats.count_error(exc.code)
                remaining = batch.deadline - time.monotonic()
                if exc.retriable and remaining > 0:
                    self.stats.retries += 1
                    if isinstance(exc, ConnectionFailed):
                        self._cluster.rotate()
                    # Any retriable answer may mean the leader moved: ask again.
                    self._metadata.invalidate(batch.topic)
                    self.stats.metadata_refreshes += 1
                    await backoff.sleep(remaining)
                    continue
                self._fail(batch, exc)
                return
            except Exception as exc:  # noqa: BLE001 - settle the futures whatever happened
                self._fail(batch, ClientError(f"sending a batch failed: {exc!r}"))
                return
            offsets = answer["offsets"]
            for future, item in zip(batch.futures, offsets, strict=True):
                if not future.done():
                    future.set_result((int(item["partition"]), item["offset"]))
            return

    def _fail(self, batch: _Batch, error: RaftkaError) -> None:
        if self.idempotent or isinstance(error, OutOfOrderSequence | InvalidProducerEpoch):
            self._reset_producer_id()
        for future in batch.futures:
            if not future.done():
                future.set_exception(error)
