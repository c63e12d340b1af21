"""Fetch (v4-v11) and ListOffsets (v1-v5) at the partition's leader.

A Fetch reads each partition's stored batches (`read_raw`, as a follower does) and hands
the records below the high watermark to the client as one RecordBatch v2 per partition
(records.encode_fetched). With nothing
to send yet it long-polls: it waits up to `max_wait_ms` (capped by the broker's
max_fetch_wait_ms) until `min_bytes` are there, or any partition's high watermark moves.
No fetch sessions (session id 0) and no transactions: the last stable offset is the
high watermark.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafka.protocol.consumer import FetchResponse, ListOffsetsResponse

from raftka.api.acl import Operation
from raftka.api.kafka import errors
from raftka.api.kafka.access import Access
from raftka.api.kafka.records import encode_fetched
from raftka.metadata.errors import RaftkaError
from raftka.storage.errors import OffsetOutOfRangeError

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker
    from raftka.replication.partition import PartitionReplica

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
NO_PREFERRED_READ_REPLICA = -1

FetchTopic_ = FetchResponse.FetchableTopicResponse
FetchPartition_ = FetchTopic_.PartitionData
OffsetsTopic_ = ListOffsetsResponse.ListOffsetsTopicResponse
OffsetsPartition_ = OffsetsTopic_.ListOffsetsPartitionResponse


@dataclass(slots=True)
class _PartitionFetch:
    topic: str
    partition: int
    offset: int
    max_bytes: int
    replica: PartitionReplica | None = None
    error_code: int = errors.NONE
    records: bytes = b""


def _leader_replica(broker: Broker, topic: str, partition: int) -> PartitionReplica:
    broker.locate(topic, partition)  # UnknownTopic / UnknownPartition
    replica = broker.local_leader(topic, partition)
    if replica is None:
        raise _NotLeader
    return replica


class _NotLeader(Exception):
    pass


class _NotAllowed(Exception):
    pass


def _read(broker: Broker, f: _PartitionFetch, budget_bytes: int) -> int:
    """Reads `f` into its records; returns the bytes taken."""
    try:
        f.replica = replica = _leader_replica(broker, f.topic, f.partition)
        high_watermark = replica.high_watermark
        f.error_code = errors.NONE
        f.records = b""
        if not replica.log_start_offset <= f.offset <= replica.log_end_offset:
            f.error_code = errors.OFFSET_OUT_OF_RANGE
        elif f.offset < high_watermark:
            # Whole stored batches, as a follower reads them; the builder keeps the
            # records in [offset, high watermark).
            stored = replica.log.read_raw(f.offset, max(1, min(f.max_bytes, budget_bytes)))
            f.records = encode_fetched(stored, f.offset, high_watermark)
    except _NotLeader:
        f.error_code = errors.NOT_LEADER_OR_FOLLOWER
    except OffsetOutOfRangeError:  # retention removed the segment meanwhile
        f.error_code = errors.OFFSET_OUT_OF_RANGE
    except RaftkaError as exc:
        f.error_code = errors.error_code(exc)
    return len(f.records)


def _read_all(broker: Broker, fetches: list[_PartitionFetch], max_bytes: int) -> int:
    total = 0
    for f in fetches:
        # Like Kafka, the first partition with records is served even past max_bytes.
        total += _read(broker, f, max_bytes - total if total else max_bytes)
    return total


async def handle_fetch(broker: Broker, request: Any, version: int, access: Access) -> Any:
    fetches: list[_PartitionFetch] = []
    refused: list[_PartitionFetch] = []  # answered at once, as any error is
    for t in request.topics:
        allowed = access.may(Operation.CONSUME, t.topic)
        for p in t.partitions:
            f = _PartitionFetch(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
            if allowed:
                fetches.append(f)
            else:
                f.error_code = errors.TOPIC_AUTHORIZATION_FAILED
                refused.append(f)
    max_bytes = request.max_bytes if request.max_bytes > 0 else 2**31 - 1
    total = _read_all(broker, fetches, max_bytes)
    wait_ms = min(max(request.max_wait_ms, 0), broker.settings.max_fetch_wait_ms)
    if total < max(request.min_bytes, 1) and wait_ms > 0 and fetches and not refused:
        waiting = [f for f in fetches if f.replica is not None and f.error_code == errors.NONE]
        if len(waiting) == len(fetches):
            await _wait_for_records(waiting, wait_ms / 1000)
            _read_all(broker, fetches, max_bytes)
    by_topic: dict[str, list[Any]] = {}
    for f in fetches + refused:
        replica = f.replica
        hw = replica.high_watermark if replica is not None else -1
        by_topic.setdefault(f.topic, []).append(
            FetchPartition_(
                partition_index=f.partition,
                error_code=f.error_code,
                high_watermark=hw,
                last_stable_offset=hw,
                log_start_offset=replica.log_start_offset if replica is not None else -1,
                aborted_transactions=[],
                preferred_read_replica=NO_PREFERRED_READ_REPLICA,
                records=f.records,
            )
        )
    return FetchResponse(
        throttle_time_ms=0,
        error_code=errors.NONE,
        session_id=0,
        responses=[FetchTopic_(topic=t, partitions=ps) for t, ps in by_topic.items()],
    )


async def _wait_for_records(fetches: list[_PartitionFetch], timeout_s: float) -> None:
    """Returns when any partition has a record at its fetch offset, or after timeout_s."""
    tasks = [
        asyncio.ensure_future(f.replica.wait_for_records(f.offset, timeout_s))
        for f in fetches
        if f.replica is not None
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _list_offset(broker: Broker, topic: str, partition: int, timestamp: int, access: Access) -> Any:
    offset = ts = -1
    try:
        if not access.may(Operation.CONSUME, topic):
            raise _NotAllowed
        replica = _leader_replica(broker, topic, partition)
        code = errors.NONE
        if timestamp == EARLIEST_TIMESTAMP:
            offset = replica.log_start_offset
        elif timestamp == LATEST_TIMESTAMP:
            offset = replica.high_watermark
        elif timestamp < 0:
            code = errors.INVALID_REQUEST
        else:
            found = replica.offset_for_timestamp(timestamp)
            if found is not None:
                offset, ts = found, timestamp
    except _NotLeader:
        code = errors.NOT_LEADER_OR_FOLLOWER
    except _NotAllowed:
        code = errors.TOPIC_AUTHORIZATION_FAILED
    except RaftkaError as exc:
        code = errors.error_code(exc)
    return OffsetsPartition_(
        partition_index=partition, error_code=code, timestamp=ts, offset=offset, leader_epoch=-1
    )


def handle_list_offsets(broker: Broker, request: Any, version: int, access: Access) -> Any:
    return ListOffsetsResponse(
        throttle_time_ms=0,
        topics=[
            OffsetsTopic_(
                name=t.name,
                partitions=[
                    _list_offset(broker, t.name, p.partition_index, p.timestamp, access)
                    for p in t.partitions
                ],
            )
            for t in request.topics
        ],
    )
