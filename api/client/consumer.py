"""The asyncio consumer: reads assigned partitions directly, or takes part in a consumer group.

Two roles behind one `Consumer`:
- `PartitionReaders` (assign mode, no group): one task per partition long-polls
  `GET /v1/topics/{t}/partitions/{p}/records` at its leader from a given offset (or
  "earliest"/"latest"), refreshing the metadata and backing off on retriable errors, and
  hands batches to `poll` through a bounded queue (a full queue stops the fetching).
- `GroupMember` (group mode, the contract's `/v1/groups/...` routes): joins, heartbeats
  every session_timeout/3 in the background to learn the generation and its assignment,
  consumes with `GET /v1/groups/{g}/members/{m}/records` (positions live on the broker),
  and commits with `POST /v1/groups/{g}/offsets`. It asks for more records only once the
  previous answer was handed out, so a broker-side auto-commit never covers records the
  application has not seen. On a new generation it drops buffered records of partitions
  it lost and, with auto_commit, commits what it handed out before it acknowledges the
  generation; on 404 UNKNOWN_MEMBER it joins again; on 409 STALE_GENERATION it
  heartbeats and retries the commit.
Never reads a broker's internals: only HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from raftka.client.errors import (
    ClientError,
    ConnectionFailed,
    OffsetOutOfRange,
    RaftkaError,
    StaleGeneration,
    UnknownMember,
)
from raftka.client.http import REQUEST_TIMEOUT_S, Backoff, Cluster, Transport
from raftka.client.metadata import Metadata
from raftka.client.records import Record, decode_record

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT_MS = 10_000
DEFAULT_MAX_POLL_RECORDS = 500
# How long one fetch waits at the broker for new records.
FETCH_WAIT_MS = 1000
# Fetched batches waiting for `poll`, per assigned partition.
BUFFERED_BATCHES_PER_PARTITION = 2
COMMIT_ATTEMPTS = 3
OFFSET_RESETS = ("earliest", "latest", "none")

TopicPartition = tuple[str, int]
StartOffset = int | str
Assignment = dict[str, list[int]]
# Told of every membership answer: ("join" or "heartbeat", member_id, generation,
# assignment). For monitoring and for the chaos harness's history.
MembershipListener = Callable[[str, str, int, Assignment], None]


def _partitions(assignment: Mapping[str, Iterable[int]]) -> set[TopicPartition]:
    return {(t, p) for t, ps in assignment.items() for p in ps}


class PartitionReaders:
    """Assign mode: fetches each given partition from its leader, from a given offset."""

    def __init__(
        self,
        transport: Transport,
        metadata: Metadata,
        assign: Sequence[tuple[str, int, StartOffset]],
        auto_offset_reset: str,
        max_records: int,
    ) -> None:
        self._transport = transport
        self._metadata = metadata
        self._starts = {(t, p): o for t, p, o in assign}
        self._reset = auto_offset_reset
        self._max_records = max_records
        self._queue: asyncio.Queue[list[Record] | BaseException] = asyncio.Queue(
            max(1, len(self._starts)) * BUFFERED_BATCHES_PER_PARTITION
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._starts)

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._read(tp, o)) for tp, o in self._starts.items()]

    async def records(self, timeout_s: float) -> list[Record]:
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return []
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _offset(self, tp: TopicPartition, timestamp: str) -> int:
        topic, partition = tp
        doc = await self._at_leader(
            tp,
            "GET",
            f"/v1/topics/{topic}/partitions/{partition}/offsets",
            {"timestamp": timestamp},
        )
        return int(doc["offset"])

    async def _at_leader(
        self,
        tp: TopicPartition,
        method: str,
        path: str,
        params: dict[str, str | int],
        wait_s: float = 0.0,
    ) -> Any:
        """One request at the partition's leader, retried (with a metadata refresh) while
        the error is retriable: a reader never gives up on a moving leader."""
        backoff = Backoff()
        while True:
            url = await self._metadata.leader_url(*tp)
            try:
                return await self._transport.request(
                    method,
                    (url or self._metadata.cluster.url) + path,
                    params=params,
                    timeout_s=wait_s + REQUEST_TIMEOUT_S,
                )
            except RaftkaError as exc:
                if not exc.retriable:
                    raise
                if isinstance(exc, ConnectionFailed):
                    self._metadata.cluster.rotate()
                self._metadata.invalidate(tp[0])
                await backoff.sleep()

    async def _read(self, tp: TopicPartition, start: StartOffset) -> None:
        topic, partition = tp
        path = f"/v1/topics/{topic}/partitions/{partition}/records"
        try:
            offset = await self._offset(tp, start) if isinstance(start, str) else start
            while True:
                params: dict[str, str | int] = {
                    "offset": offset,
                    "max_records": self._max_records,
                    "max_wait_ms": FETCH_WAIT_MS,
                }
                try:
                    doc = await self._at_leader(tp, "GET", path, params, FETCH_WAIT_MS / 1000)
                except OffsetOutOfRange as exc:
                    if self._reset == "none":
                        raise
                    if self._reset == "earliest":
                        offset = int(exc.details["log_start_offset"])
                    else:
                        offset = await self._offset(tp, "latest")
                    continue
                records = [decode_record(topic, partition, r) for r in doc["records"]]
                if records:
                    await self._queue.put(records)
                offset = int(doc["next_offset"])
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - poll raises it
            await self._queue.put(exc)


class GroupMember:
    """Group mode: one member of a consumer group, over the contract's group routes."""

    def __init__(
        self,
        cluster: Cluster,
        group: str,
        topics: Sequence[str],
        auto_commit: bool,
        session_timeout_ms: int,
        max_records: int,
        auto_offset_reset: str = "earliest",
        listener: MembershipListener | None = None,
    ) -> None:
        self._cluster = cluster
        self._listener = listener
        self._auto_offset_reset = auto_offset_reset
        self.group = group
        self._topics = list(topics)
        self._auto_commit = auto_commit
        self._session_timeout_ms = session_timeout_ms
        self._max_records = max_records
        self.member_id: str | None = None
        self.generation = -1
        self.assignment: Assignment = {}
        self._buffer: deque[Record] = deque()
        # Per partition, the offset after the last record handed to the application.
        self._delivered: dict[TopicPartition, int] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._rejoin = False

    @property
    def _base(self) -> str:
        return f"/v1/groups/{self.group}"

    async def start(self) -> None:
        await self._find_coordinator()
        await self._join()
        self._heartbeat_task = asyncio.ensure_future(self._heartbeat_loop())

    async def _find_coordinator(self) -> None:
        """Points this member's requests at the group's coordinator (Kafka's
        FindCoordinator): any broker would forward them there, at a cost per request.
        Best effort: on failure the requests go through whichever broker answers."""
        try:
            described = await self._cluster.request("GET", self._base, retry_for_s=1.0)
            coordinator = described.get("coordinator")
            if coordinator is None:
                return
            brokers = (await self._cluster.request("GET", "/v1/cluster", retry_for_s=1.0))[
                "brokers"
            ]
        except RaftkaError as exc:
            log.debug("finding the coordinator of group %s: %s", self.group, exc)
            return
        for broker in brokers:
            if broker.get("id") == coordinator and broker.get("url"):
                self._cluster.prefer(str(broker["url"]))

    async def _join(self) -> None:
        body: dict[str, Any] = {
            "topics": self._topics,
            "session_timeout_ms": self._session_timeout_ms,
            "auto_commit": self._auto_commit,
        }
        if self._auto_offset_reset != "earliest":  # a field beyond the contract's three
            body["auto_offset_reset"] = self._auto_offset_reset
        doc = await self._cluster.request("POST", f"{self._base}/members", body=body)
        self.member_id = str(doc["member_id"])
        self.generation = int(doc["generation"])
        self.assignment = {t: list(ps) for t, ps in doc["assignment"].items()}
        self._tell("join", doc)
        self._buffer.clear()
        self._delivered.clear()
        self._rejoin = False

    async def _heartbeat_loop(self) -> None:
        interval_s = self._session_timeout_ms / 3000
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self._rejoin:
                    await self._join()
                else:
                    await self.heartbeat()
            except UnknownMember:
                self._rejoin = True
            except RaftkaError as exc:
                log.warning("heartbeat of %s in group %s: %s", self.member_id, self.group, exc)
                await self._find_coordinator()  # it may have moved

    async def heartbeat(self) -> None:
        """Tells the group this member lives and learns its generation and assignment."""
        doc = await self._cluster.request(
            "POST",
            f"{self._base}/members/{self.member_id}/heartbeat",
            body={"generation": self.generation},
            retry_for_s=self._session_timeout_ms / 3000,
        )
        self._tell("heartbeat", doc)
        generation = int(doc["generation"])
        assignment = {t: list(ps) for t, ps in doc["assignment"].items()}
        if generation == self.generation and _partitions(assignment) == _partitions(
            self.assignment
        ):
            return
        await self._adopt(generation, assignment)

    async def _adopt(self, generation: int, assignment: Assignment) -> None:
        """A new generation or assignment. With auto_commit, what was handed out is
        committed first: a member may still commit a revoked partition at the new
        generation until it acknowledges that generation (its last chance)."""
        kept = _partitions(assignment)
        changed = generation != self.generation
        self.generation = generation
        if changed and self._auto_commit and self._delivered:
            with contextlib.suppress(StaleGeneration, UnknownMember):
                await self._commit_once(dict(self._delivered))
        self._buffer = deque(r for r in self._buffer if (r.topic, r.partition) in kept)
        self._delivered = {tp: o for tp, o in self._delivered.items() if tp in kept}
        self.assignment = assignment
        if changed:  # acknowledge the new generation at once: revoked partitions move on
            # A newer generation in this answer is adopted by the next heartbeat.
            doc = await self._cluster.request(
                "POST",
                f"{self._base}/members/{self.member_id}/heartbeat",
                body={"generation": self.generation},
                retry_for_s=self._session_timeout_ms / 3000,
            )
            self._tell("heartbeat", doc)

    def _tell(self, event: str, doc: Any) -> None:
        if self._listener is not None and self.member_id is not None:
            assignment = {t: list(ps) for t, ps in doc["assignment"].items()}
            self._listener(event, self.member_id, int(doc["generation"]), assignment)

    async def records(self, timeout_s: float) -> list[Record]:
        if self._rejoin:
            await self._join()
        if self._buffer:
            return self._take()
        try:
            doc = await self._cluster.request(
                "GET",
                f"{self._base}/members/{self.member_id}/records",
                params={"max_records": self._max_records, "max_wait_ms": int(timeout_s * 1000)},
                retry_for_s=timeout_s,
                timeout_s=timeout_s + REQUEST_TIMEOUT_S,
            )
        except UnknownMember:
            await self._join()
            return []
        assigned = _partitions(self.assignment)
        for r in doc["records"]:
            record = decode_record(r["topic"], r["partition"], r)
            if (record.topic, record.partition) in assigned:
                self._buffer.append(record)
        return self._take()

    def _take(self) -> list[Record]:
        out = list(self._buffer)
        self._buffer.clear()
        for r in out:
            self._delivered[(r.topic, r.partition)] = r.offset + 1
        return out

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commits `offsets` (default: after every record handed out) for this member."""
        wanted = dict(self._delivered if offsets is None else offsets)
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                await self._commit_once(wanted)
                return
            except StaleGeneration:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                await self.heartbeat()
                assigned = _partitions(self.assignment)
                lost = [tp for tp in wanted if tp not in assigned]
                if lost:
                    raise StaleGeneration(
                        f"partitions {sorted(lost)} moved to another member before the commit"
                    ) from None
            except UnknownMember:
                self._rejoin = True
                raise

    async def _commit_once(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        await self._cluster.request(
            "POST",
            f"{self._base}/offsets",
            body={
                "member_id": self.member_id,
                "generation": self.generation,
                "offsets": [
                    {"topic": t, "partition": p, "offset": o} for (t, p), o in offsets.items()
                ],
            },
        )

    async def stop_heartbeats(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_heartbeats()
        if self.member_id is None:
            return
        if self._auto_commit:
            with contextlib.suppress(RaftkaError):
                await self._commit_once(dict(self._delivered))
        with contextlib.suppress(RaftkaError):
            await self._cluster.request(
                "DELETE", f"{self._base}/members/{self.member_id}", retry_for_s=5.0
            )
        self.member_id = None


class Consumer:
    """Reads records (asyncio flavour). `Consumer(bootstrap, group=G, topics=[...])` joins a
    consumer group; `Consumer(bootstrap, assign=[(topic, partition, offset)])` reads the
    given partitions without a group (offset: an int, "earliest" or "latest")."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        group: str | None = None,
        topics: Sequence[str] | None = None,
        assign: Sequence[tuple[str, int, StartOffset]] | None = None,
        auto_commit: bool = False,
        session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
        auto_offset_reset: str = "earliest",
        max_poll_records: int = DEFAULT_MAX_POLL_RECORDS,
        token: str | None = None,
        cacert: str | None = None,
        membership_listener: MembershipListener | None = None,
    ) -> None:
        if (group is None) == (assign is None):
            raise ValueError("give either group= (with topics=) or assign=")
        if group is not None and not topics:
            raise ValueError("a group member needs topics=")
        if auto_offset_reset not in OFFSET_RESETS:
            raise ValueError(f"auto_offset_reset must be one of {OFFSET_RESETS}")
        self._transport = Transport(token=token, cacert=cacert)
        self._cluster = Cluster(bootstrap, self._transport)
        self._member: GroupMember | None = None
        self._readers: PartitionReaders | None = None
        if group is not None:
            assert topics is not None
            self._member = GroupMember(
                self._cluster,
                group,
                topics,
                auto_commit,
                session_timeout_ms,
                max_poll_records,
                auto_offset_reset,
                membership_listener,
            )
        else:
            assert assign is not None
            self._readers = PartitionReaders(
                self._transport,
                Metadata(self._cluster),
                assign,
                auto_offset_reset,
                max_poll_records,
            )
        self._started = False
        self._closed = False
        self._positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Joins the group or starts the fetches (poll and iteration call it first)."""
        if self._closed:
            raise ClientError("the consumer is closed")
        if self._started:
            return
        self._started = True
        if self._member is not None:
            await self._member.start()
        elif self._readers is not None:
            await self._readers.start()

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def poll(self, timeout_s: float = 1.0) -> list[Record]:
        """The next records, waiting up to `timeout_s` for some (an empty list then)."""
        await self.start()
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if self._member is not None:
                records = await self._member.records(remaining)
            else:
                assert self._readers is not None
                records = await self._readers.records(remaining)
            if records or time.monotonic() >= deadline:
                break
        for r in records:
            self._positions[(r.topic, r.partition)] = r.offset + 1
        return records

    async def _iterate(self) -> AsyncIterator[Record]:
        while not self._closed:
            for record in await self.poll():
                yield record

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._iterate()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads now."""
        if self._member is not None:
            return _partitions(self._member.assignment)
        assert self._readers is not None
        return self._readers.assignment

    def position(self, topic: str, partition: int) -> int | None:
        """The offset after the last record `poll` handed out of this partition."""
        return self._positions.get((topic, partition))

    @property
    def member_id(self) -> str | None:
        return None if self._member is None else self._member.member_id

    @property
    def generation(self) -> int | None:
        return None if self._member is None else self._member.generation

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commits, for the group, the offsets after every record handed out (or `offsets`:
        `{(topic, partition): next offset to read}`)."""
        if self._member is None:
            raise ClientError("commit needs a group: this consumer was given assign=")
        await self._member.commit(offsets)

    async def close(self) -> None:
        """Stops fetching; a group member commits (with auto_commit) and leaves the group."""
        await self._stop(leave=True)

    async def abort(self) -> None:
        """Stops at once without leaving the group or committing, as a crashed process
        would: the group notices only when the member's session times out."""
        await self._stop(leave=False)

    async def _stop(self, *, leave: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._member is not None:
            await (self._member.close() if leave else self._member.stop_heartbeats())
        if self._readers is not None:
            await self._readers.close()
        await self._transport.close()
