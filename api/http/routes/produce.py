"""Produce: POST /v1/topics/{topic}/records and /v1/topics/{topic}/partitions/{p}/records.

Chooses each record's partition (explicit, Kafka's murmur2 on the key, or round-robin),
appends the partitions this broker leads and forwards the others to their leaders, then
answers the offsets in the order the records were sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import orjson
from aiohttp import web

from raftka.api.broker.background import BackgroundWrites
from raftka.api.broker.broker import Broker
from raftka.api.http.context import (
    BROKER_KEY,
    FORWARDER_KEY,
    METRICS_KEY,
    partition_param,
    read_body,
    topic_param,
)
from raftka.api.http.forward import Forwarder, is_forwarded
from raftka.api.http.records import ParsedRecord, parse_acks, parse_produce
from raftka.api.partitioner import RoundRobin, partition_for_key
from raftka.metadata.errors import (
    InvalidRequest,
    LeaderNotAvailable,
    UnknownPartition,
    error_for_code,
)
from raftka.replication.partition import PartitionReplica
from raftka.replication.producer_state import ProducerRef

log = logging.getLogger(__name__)

ROUND_ROBIN_KEY = web.AppKey("round_robin", RoundRobin)
# acks=0 writes still running after their answer, bounded (push-back past the limit).
BACKGROUND_KEY = web.AppKey("acks0_writes", BackgroundWrites)
MAX_ACKS0_WRITES_IN_FLIGHT = 256


@dataclass(frozen=True, slots=True)
class PartitionWrite:
    """The records of one request bound for one partition, and their places in it."""

    indexes: Sequence[int]
    records: Sequence[ParsedRecord]


# Where a partition's records go: this broker's replica, or its leader's URL.
Target: TypeAlias = PartitionReplica | str


async def resolve(broker: Broker, topic: str, partition: int, acks: str, forwarded: bool) -> Target:
    """Everything that can refuse a write to one partition, checked before any write."""
    location = await broker.locate_soon(topic, partition, forwarded=forwarded)
    replica = await broker.local_leader_soon(topic, partition, forwarded=forwarded)
    if replica is not None:
        replica.check_can_append(acks)
        return replica
    leader = location.partition.leader
    if forwarded or leader is None or leader == broker.broker_id:
        raise LeaderNotAvailable(
            f"{topic}-{partition} has no leader that can take writes right now"
        )
    url = broker.broker_url(leader)
    if url is None:
        raise LeaderNotAvailable(f"the leader of {topic}-{partition} (broker {leader}) is unknown")
    return url


async def write_partition(
    broker: Broker,
    forwarder: Forwarder,
    topic: str,
    partition: int,
    target: Target,
    records: Sequence[ParsedRecord],
    acks: str,
    producer: ProducerRef | None = None,
) -> int:
    """Writes one partition's records where `resolve` said; returns the base offset
    (-1 when a leader elsewhere answered acks=0)."""
    if isinstance(target, PartitionReplica):
        now_ms = int(time.time() * 1000)
        appended = await target.append(
            [(now_ms if ts is None else ts, body) for _, _, ts, body in records],
            acks=acks,
            producer=producer,
        )
        if not appended.duplicate:
            broker.flusher.mark_dirty(target.log)
        if acks != "0":
            await broker.flusher.wait_durable(target.log)
        if acks == "all":
            timeout_s = broker.settings.request_timeout_ms / 1000
            await target.wait_for_commit(appended, timeout_s)
        return appended.base_offset
    body = b'{"records":[' + b",".join(_record_json(r) for r in records) + b"]"
    if producer is not None:
        body += b',"producer":{"id":%d,"epoch":%d,"sequence":%d}' % (
            producer.producer_id,
            producer.producer_epoch,
            producer.sequence,
        )
    status, payload, _ = await forwarder.send(
        "POST",
        f"{target}/v1/topics/{topic}/partitions/{partition}/records?acks={acks}",
        body=body + b"}",
    )
    answer = orjson.loads(payload)
    if status != 200:
        err = answer.get("error", {})
        raise error_for_code(
            err.get("code", "INTERNAL_ERROR"), err.get("message", "forwarding failed")
        )
    first = answer["offsets"][0]["offset"]
    return -1 if first is None else int(first)


def _record_json(record: ParsedRecord) -> bytes:
    _, _, ts, body = record
    return b"{" + body + (b',"timestamp":%d}' % ts if ts is not None else b"}")


def _offsets_answer(writes: dict[int, PartitionWrite], bases: dict[int, int] | None) -> bytes:
    """`{"offsets": [...]}` in request order; offsets null when `bases` is None (acks=0).
    One small bytes object per record, joined once: cheaper than dicts and orjson."""
    answer: list[bytes] = [b""] * sum(len(w.indexes) for w in writes.values())
    for p, w in writes.items():
        if bases is None:
            for i in w.indexes:
                answer[i] = b'{"partition":%d,"offset":null}' % p
        else:
            for offset, i in enumerate(w.indexes, bases[p]):
                answer[i] = b'{"partition":%d,"offset":%d}' % (p, offset)
    return b'{"offsets":[' + b",".join(answer) + b"]}"


async def _produce(
    request: web.Request,
    topic: str,
    writes: dict[int, PartitionWrite],
    acks: str,
    producer: ProducerRef | None = None,
) -> web.Response:
    broker = request.app[BROKER_KEY]
    forwarder = request.app[FORWARDER_KEY]
    forwarded = is_forwarded(request)
    metrics = request.app[METRICS_KEY]
    metrics.produce_requests.inc()
    # Every partition is checked before any is written: a refused request writes nothing.
    targets = {p: await resolve(broker, topic, p, acks, forwarded) for p in writes}

    async def write(partition: int) -> tuple[int, int]:
        w = writes[partition]
        base = await write_partition(
            broker, forwarder, topic, partition, targets[partition], w.records, acks, producer
        )
        # Counted here, once written, so acks=0 writes (finished after the answer) count too.
        metrics.produced_records.inc(len(w.records))
        return partition, base

    bases: dict[int, int] | None
    if acks == "0":
        await request.app[BACKGROUND_KEY].submit(asyncio.gather(*(write(p) for p in writes)))
        bases = None
    elif len(writes) == 1:  # the partition endpoint: no task or gather for one write
        bases = dict([await write(next(iter(writes)))])
    else:
        bases = dict(await asyncio.gather(*(write(p) for p in writes)))
    return web.Response(body=_offsets_answer(writes, bases), content_type="application/json")


async def produce_to_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    topic = topic_param(request)
    acks = parse_acks(request.query.get("acks"))
    parsed = parse_produce(await read_body(request))
    if parsed.producer is not None:
        raise InvalidRequest("producer is accepted only on the partition endpoint")
    count = len(broker.locate(topic, 0).topic.partitions)
    round_robin = request.app[ROUND_ROBIN_KEY]
    groups: dict[int, tuple[list[int], list[ParsedRecord]]] = {}
    for i, record in enumerate(parsed.records):
        partition, key, _, _ = record
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, count)
            else:
                partition = round_robin.next_partition(topic, count)
        elif partition >= count:
            raise UnknownPartition(f"records[{i}].partition {partition}: {topic!r} has {count}")
        indexes, records = groups.setdefault(partition, ([], []))
        indexes.append(i)
        records.append(record)
    writes = {p: PartitionWrite(indexes, records) for p, (indexes, records) in groups.items()}
    return await _produce(request, topic, writes, acks)


async def produce_to_partition(request: web.Request) -> web.Response:
    topic = topic_param(request)
    partition = partition_param(request)
    acks = parse_acks(request.query.get("acks"))
    await request.app[BROKER_KEY].locate_soon(topic, partition, forwarded=is_forwarded(request))
    parsed = parse_produce(await read_body(request))
    for i, (p, _, _, _) in enumerate(parsed.records):
        if p is not None and p != partition:
            raise InvalidRequest(f"records[{i}].partition is {p} but the path names {partition}")
    records = parsed.records
    return await _produce(
        request,
        topic,
        {partition: PartitionWrite(range(len(records)), records)},
        acks,
        parsed.producer,
    )


def add_routes(app: web.Application) -> None:
    app[ROUND_ROBIN_KEY] = RoundRobin()
    app[BACKGROUND_KEY] = BackgroundWrites(MAX_ACKS0_WRITES_IN_FLIGHT)
    app.router.add_post("/v1/topics/{topic}/records", produce_to_topic)
    app.router.add_post("/v1/topics/{topic}/partitions/{partition}/records", produce_to_partition)
