"""Produce (v3-v8): each partition's RecordBatch v2 becomes one stored batch at the
local leader, through the same append path as the HTTP produce route."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from kafka.protocol.producer import ProduceResponse

from raftka.api.acl import Operation
from raftka.api.broker.partition_writer import append_at_leader
from raftka.api.kafka import errors
from raftka.api.kafka.access import Access
from raftka.api.kafka.records import InvalidRecordBatch, decode_produced
from raftka.replication.producer_state import ProducerRef

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker

ACKS = {0: "0", 1: "1", -1: "all"}
NO_OFFSET = -1

# (error code, base offset, log start offset, error message) of one partition's produce
_Outcome = tuple[int, int, int, str | None]

Topic_ = ProduceResponse.TopicProduceResponse
Partition_ = Topic_.PartitionProduceResponse


async def _produce_partition(
    broker: Broker, topic: str, partition: int, records: bytes | None, acks: str, timeout_s: float
) -> _Outcome:
    """The outcome of one partition's records."""
    try:
        replica = await broker.local_leader_soon(topic, partition)  # raises UnknownTopic/...
        if replica is None:
            return errors.NOT_LEADER_OR_FOLLOWER, NO_OFFSET, NO_OFFSET, None
        if not records:
            return errors.INVALID_REQUEST, NO_OFFSET, NO_OFFSET, "no records"
        batch = decode_produced(records, int(time.time() * 1000))
        producer = None
        if batch.producer_id >= 0:
            producer = ProducerRef(batch.producer_id, batch.producer_epoch, batch.base_sequence)
        appended = await append_at_leader(broker, replica, batch.records, acks, producer, timeout_s)
        return errors.NONE, appended.base_offset, replica.log_start_offset, None
    except InvalidRecordBatch as exc:
        return exc.error_code, NO_OFFSET, NO_OFFSET, str(exc)
    except Exception as exc:
        return errors.error_code(exc), NO_OFFSET, NO_OFFSET, str(exc)


def _refuse_all(request: Any, code: int, why: str) -> dict[tuple[str, int], _Outcome]:
    return {
        (t.name, p.index): (code, NO_OFFSET, NO_OFFSET, why)
        for t in request.topic_data
        for p in t.partition_data
    }


def refuse_old_produce(request: Any, version: int) -> Any | None:
    """Produce v0-2 (message format v0/v1): advertised, as Kafka 4.0 does so librdkafka
    keeps talking, and refused per partition with UNSUPPORTED_VERSION."""
    results = _refuse_all(request, errors.UNSUPPORTED_VERSION, "Produce v3 or later is needed")
    return None if request.acks == 0 else _response(results, version)


async def _refused(topic: str) -> _Outcome:
    return (
        errors.TOPIC_AUTHORIZATION_FAILED,
        NO_OFFSET,
        NO_OFFSET,
        f"no produce ACL on topic {topic!r}",
    )


async def handle_produce(broker: Broker, request: Any, version: int, access: Access) -> Any | None:
    """The response, or None for acks=0 (Kafka sends none)."""
    acks = ACKS.get(request.acks)
    results: dict[tuple[str, int], _Outcome]
    if acks is None:
        results = _refuse_all(request, errors.INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1")
    elif request.transactional_id is not None:
        results = _refuse_all(request, errors.INVALID_REQUEST, "transactions are not supported")
    else:
        timeout_s = min(max(request.timeout_ms, 0), broker.settings.request_timeout_ms) / 1000
        keys = [(t.name, p.index) for t in request.topic_data for p in t.partition_data]
        outcomes = await asyncio.gather(
            *(
                _produce_partition(broker, t.name, p.index, p.records, acks, timeout_s)
                if access.may(Operation.PRODUCE, t.name)
                else _refused(t.name)
                for t in request.topic_data
                for p in t.partition_data
            )
        )
        results = dict(zip(keys, outcomes, strict=True))
    return None if acks == "0" else _response(results, version)


def _response(results: dict[tuple[str, int], _Outcome], version: int) -> Any:
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), (code, base, log_start, message) in results.items():
        by_topic.setdefault(topic, []).append(
            Partition_(
                index=partition,
                error_code=code,
                base_offset=base,
                log_append_time_ms=-1,
                log_start_offset=log_start,
                record_errors=[],
                error_message=message if version >= 8 else None,
            )
        )
    return ProduceResponse(
        responses=[Topic_(name=t, partition_responses=ps) for t, ps in by_topic.items()],
        throttle_time_ms=0,
    )
