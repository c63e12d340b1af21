"""The sync flavour: the asyncio core run on a private event loop in a background thread.

Each `Producer`, `Consumer` and `Admin` here owns one `LoopThread` and one core object of
`raftka.client.aio`, and turns each call into a coroutine run on that loop. No protocol
logic lives here: only the crossing between the caller's thread and the loop's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from raftka.client import admin as _admin
from raftka.client import consumer as _consumer
from raftka.client import producer as _producer
from raftka.client.errors import ClientError
from raftka.client.records import Headers, Record

T = TypeVar("T")
STOP_TIMEOUT_S = 10.0


class LoopThread:
    """An event loop running in a daemon thread until `stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Runs `coro` on the loop and waits for it. An interrupt (Ctrl-C) or a timeout of
        the caller cancels it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


def _copy_outcome(source: asyncio.Future[T], target: concurrent.futures.Future[T]) -> None:
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


class Producer:
    """Sends records; `send` returns a `concurrent.futures.Future` of (partition, offset).
    See `raftka.client.aio.Producer` for the options.

    `send` only hands the record to the loop (no round trip per record): one intake task
    there passes records to the core in send order. The caller's thread waits only while
    `buffer_records` records are unacknowledged."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        acks: str = "all",
        linger_ms: int = _producer.DEFAULT_LINGER_MS,
        batch_records: int = _producer.DEFAULT_BATCH_RECORDS,
        idempotent: bool = True,
        delivery_timeout_ms: int = _producer.DEFAULT_DELIVERY_TIMEOUT_MS,
        buffer_records: int = _producer.DEFAULT_BUFFER_RECORDS,
        token: str | None = None,
        cacert: str | None = None,
    ) -> None:
        self._core = _producer.Producer(
            bootstrap,
            acks=acks,
            linger_ms=linger_ms,
            batch_records=batch_records,
            idempotent=idempotent,
            delivery_timeout_ms=delivery_timeout_ms,
            buffer_records=buffer_records,
            token=token,
            cacert=cacert,
        )
        self._room = threading.Semaphore(buffer_records)
        self._closed = False
        self._loop = LoopThread("raftka-producer")
        self._intake: asyncio.Queue[_Send] = asyncio.Queue()  # bound to the loop on first use
        self._intake_task = asyncio.run_coroutine_threadsafe(self._run_intake(), self._loop.loop)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> _producer.ProducerStats:
        return self._core.stats

    def send(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> concurrent.futures.Future[_producer.Offset]:
        """Queues one record (waiting while the buffer is full); the future resolves to
        `(partition, offset)` once the record is acknowledged, or holds its error."""
        if self._closed:
            raise ClientError("the producer is closed")
        self._room.acquire()
        result: concurrent.futures.Future[_producer.Offset] = concurrent.futures.Future()
        result.add_done_callback(lambda _: self._room.release())
        item = _Send(topic, value, key, headers, partition, timestamp, result)
        self._loop.loop.call_soon_threadsafe(self._intake.put_nowait, item)
        return result

    async def _run_intake(self) -> None:
        while True:
            item = await self._intake.get()
            try:
                sent = await self._core.send(
                    item.topic, item.value, item.key, item.headers, item.partition, item.timestamp
                )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the record's future holds it
                item.result.set_exception(exc)
            else:
                sent.add_done_callback(lambda f, r=item.result: _copy_outcome(f, r))
            finally:
                self._intake.task_done()

    async def _flush(self) -> None:
        await self._intake.join()
        await self._core.flush()

    def flush(self) -> None:
        """Waits until every record sent so far is acknowledged or failed."""
        self._loop.run(self._flush())

    def close(self) -> None:
        """Flushes, then stops the producer's loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._flush())
            self._intake_task.cancel()
            self._loop.run(self._core.close())
        finally:
            self._loop.stop()


@dataclass(frozen=True, slots=True)
class _Send:
    topic: str
    value: Any
    key: Any
    headers: Headers | None
    partition: int | None
    timestamp: int | None
    result: concurrent.futures.Future[_producer.Offset]


class Consumer:
    """Reads records; iterate over it or call `poll`. See `raftka.client.aio.Consumer`."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        group: str | None = None,
        topics: Sequence[str] | None = None,
        assign: Sequence[tuple[str, int, _consumer.StartOffset]] | None = None,
        auto_commit: bool = False,
        session_timeout_ms: int = _consumer.DEFAULT_SESSION_TIMEOUT_MS,
        auto_offset_reset: str = "earliest",
        max_poll_records: int = _consumer.DEFAULT_MAX_POLL_RECORDS,
        token: str | None = None,
        cacert: str | None = None,
    ) -> None:
        self._core = _consumer.Consumer(
            bootstrap,
            group=group,
            topics=topics,
            assign=assign,
            auto_commit=auto_commit,
            session_timeout_ms=session_timeout_ms,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_poll_records,
            token=token,
            cacert=cacert,
        )
        self._loop = LoopThread("raftka-consumer")
        self._closed = False

    def __enter__(self) -> Consumer:
        self.start()
        return self

    def start(self) -> None:
        """Joins the group or starts the fetches (poll and iteration call it first)."""
        self._loop.run(self._core.start())

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self, timeout_s: float = 1.0) -> list[Record]:
        """The next records, waiting up to `timeout_s` (an empty list then)."""
        return self._loop.run(self._core.poll(timeout_s))

    def __iter__(self) -> Iterator[Record]:
        while not self._closed:
            yield from self.poll()

    def commit(self, offsets: Mapping[tuple[str, int], int] | None = None) -> None:
        self._loop.run(self._core.commit(offsets))

    def assignment(self) -> set[tuple[str, int]]:
        return self._core.assignment()

    def position(self, topic: str, partition: int) -> int | None:
        return self._core.position(topic, partition)

    @property
    def member_id(self) -> str | None:
        return self._core.member_id

    @property
    def generation(self) -> int | None:
        return self._core.generation

    def close(self) -> None:
        """Stops fetching; a group member commits (with auto_commit) and leaves the group."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._core.close())
        finally:
            self._loop.stop()


class Admin:
    """Topics, the cluster, groups and offsets. See `raftka.client.aio.Admin`."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        token: str | None = None,
        cacert: str | None = None,
        retry_for_s: float = _admin.DEFAULT_RETRY_FOR_S,
    ) -> None:
        self._core = _admin.Admin(bootstrap, token=token, cacert=cacert, retry_for_s=retry_for_s)
        self._loop = LoopThread("raftka-admin")

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._core.close())
        finally:
            self._loop.stop()

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, Any] | None = None,
    ) -> Any:
        return self._loop.run(self._core.create_topic(name, partitions, replication_factor, config))

    def delete_topic(self, name: str) -> None:
        self._loop.run(self._core.delete_topic(name))

    def list_topics(self) -> list[str]:
        return self._loop.run(self._core.list_topics())

    def describe_topic(self, name: str) -> Any:
        return self._loop.run(self._core.describe_topic(name))

    def cluster(self) -> Any:
        return self._loop.run(self._core.cluster())

    def offset(self, topic: str, partition: int, timestamp: str | int = "latest") -> Any:
        return self._loop.run(self._core.offset(topic, partition, timestamp))

    def list_groups(self) -> list[str]:
        return self._loop.run(self._core.list_groups())

    def describe_group(self, group: str) -> Any:
        return self._loop.run(self._core.describe_group(group))

    def group_offsets(self, group: str) -> list[Any]:
        return self._loop.run(self._core.group_offsets(group))
