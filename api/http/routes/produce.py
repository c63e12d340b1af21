"""Produce: POST /v1/topics/{topic}/records and /v1/topics/{topic}/partitions/{p}/records.

Chooses each record's partition (explicit, Kafka's murmur2 on the key, or the sticky
partition of the request's keyless records), appends the partitions this broker leads and
forwards the others to their leaders, then answers the offsets in the order the records
were sent. A request bound for one partition led elsewhere is passed through: its body
goes to the leader as the client sent it, and the leader's answer comes back as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TypeAlias

import orjson
from aiohttp import web

from raftka.api.broker.broker import Broker
from raftka.api.broker.partition_writer import append_at_leader
from raftka.api.http.background_writes import BackgroundWrites
from raftka.api.http.context import (
    BROKER_KEY,
    FORWARDER_KEY,
    METRICS_KEY,
    is_forwarded,
    partition_param,
    read_body,
    topic_param,
)
from raftka.api.http.forward import Forwarder, peer_error
from raftka.api.http.offsets_answer import Writes, offsets_answer
from raftka.api.http.records import ProduceRequest, parse_acks, parse_produce
from raftka.api.partitioner import StickyPartitioner, partition_for_key
from raftka.metadata.errors import (
    InvalidRequest,
    LeaderNotAvailable,
    UnknownPartition,
)
from raftka.replication.partition import PartitionReplica

log = logging.getLogger(__name__)

STICKY_KEY = web.AppKey("sticky_partitioner", StickyPartitioner)
# acks=0 writes still running after their answer, bounded (push-back past the limit).
BACKGROUND_KEY = web.AppKey("acks0_writes", BackgroundWrites)
MAX_ACKS0_WRITES_IN_FLIGHT = 256

# Where a partition's records go: this broker's replica, or its leader's URL.
Target: TypeAlias = PartitionReplica | str


async def locate_target(broker: Broker, topic: str, partition: int, forwarded: bool) -> Target:
    """This broker's replica when it leads the partition, else the leader's URL."""
    location = await broker.locate_soon(topic, partition, forwarded=forwarded)
    replica = await broker.local_leader_soon(topic, partition, forwarded=forwarded)
    if replica is not None:
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


async def resolve(broker: Broker, topic: str, partition: int, acks: str, forwarded: bool) -> Target:
    """Everything that can refuse a write to one partition, checked before any write."""
    target = await locate_target(broker, topic, partition, forwarded)
    if isinstance(target, PartitionReplica):
        target.check_can_append(acks)
    return target


def partition_path(url: str, topic: str, partition: int, acks: str) -> str:
    return f"{url}/v1/topics/{topic}/partitions/{partition}/records?acks={acks}"


async def write_partition(
    broker: Broker,
    forwarder: Forwarder,
    topic: str,
    partition: int,
    target: Target,
    parsed: ProduceRequest,
    indexes: Sequence[int] | None,
    acks: str,
) -> int:
    """Writes the records at `indexes` (None: all) of one partition where `resolve` said;
    returns the base offset (-1 when a leader elsewhere answered acks=0)."""
    if isinstance(target, PartitionReplica):
        appended = await append_at_leader(
            broker,
            target,
            parsed.log_records(int(time.time() * 1000), indexes),
            acks,
            parsed.producer,
        )
        return appended.base_offset
    # One of several partitions of a topic-endpoint request: its records re-encoded.
    chosen = range(len(parsed)) if indexes is None else indexes
    body = b'{"records":[' + b",".join(map(parsed.record_json, chosen)) + b"]}"
    status, payload, _ = await forwarder.send(
        "POST", partition_path(target, topic, partition, acks), body=body
    )
    if status != 200:
        raise peer_error(status, payload, target)
    first = orjson.loads(payload)["offsets"][0]["offset"]
    return -1 if first is None else int(first)


async def _produce(
    request: web.Request,
    topic: str,
    parsed: ProduceRequest,
    writes: Writes,
    targets: dict[int, Target],
    acks: str,
) -> web.Response:
    broker = request.app[BROKER_KEY]
    forwarder = request.app[FORWARDER_KEY]
    metrics = request.app[METRICS_KEY]
    whole = len(writes) == 1

    async def write(partition: int) -> tuple[int, int]:
        indexes = None if whole else writes[partition]
        base = await write_partition(
            broker, forwarder, topic, partition, targets[partition], parsed, indexes, acks
        )
        # Counted here, once written, so acks=0 writes (finished after the answer) count too.
        metrics.produced_records.inc(len(writes[partition]))
        return partition, base

    bases: dict[int, int] | None
    if acks == "0":
        await request.app[BACKGROUND_KEY].submit(asyncio.gather(*(write(p) for p in writes)))
        bases = None
    elif whole:  # no task or gather for one write
        bases = dict([await write(next(iter(writes)))])
    else:
        bases = dict(await asyncio.gather(*(write(p) for p in writes)))
    return web.Response(
        body=offsets_answer(writes, len(parsed), bases), content_type="application/json"
    )


async def _pass_through(
    request: web.Request, url: str, topic: str, partition: int, acks: str, body: bytes
) -> web.Response:
    """The whole request goes to the partition's leader, body as sent; its answer (offsets
    or the contract's error, with Retry-After) comes back as the leader gave it."""
    request.app[METRICS_KEY].produce_requests.inc()
    return await request.app[FORWARDER_KEY].proxy(
        "POST", partition_path(url, topic, partition, acks), body
    )


def choose_partitions(
    parsed: ProduceRequest, topic: str, count: int, sticky: StickyPartitioner
) -> Writes:
    """Each record's partition: its own, its key's, or the request's sticky partition."""
    partitions = parsed.partitions
    if partitions is None and parsed.keyless():
        return {sticky.partition_for_request(topic, count): range(len(parsed))}
    keys = parsed.key_bytes()
    keyless_partition: int | None = None
    writes: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        partition = None if partitions is None else partitions[i]
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, count)
            else:
                if keyless_partition is None:
                    keyless_partition = sticky.partition_for_request(topic, count)
                partition = keyless_partition
        elif partition >= count:
            raise UnknownPartition(f"records[{i}].partition {partition}: {topic!r} has {count}")
        writes.setdefault(partition, []).append(i)
    return dict(writes)


async def produce_to_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    topic = topic_param(request)
    acks = parse_acks(request.query.get("acks"))
    forwarded = is_forwarded(request)
    body = await read_body(request)
    parsed = parse_produce(body)
    if parsed.producer is not None:
        raise InvalidRequest("producer is accepted only on the partition endpoint")
    count = len(broker.locate(topic, 0).topic.partitions)
    writes = choose_partitions(parsed, topic, count, request.app[STICKY_KEY])
    # Every partition is checked before any is written: a refused request writes nothing.
    targets = {p: await resolve(broker, topic, p, acks, forwarded) for p in writes}
    if len(targets) == 1:
        ((partition, target),) = targets.items()
        if isinstance(target, str):
            return await _pass_through(request, target, topic, partition, acks, body)
    request.app[METRICS_KEY].produce_requests.inc()
    return await _produce(request, topic, parsed, writes, targets, acks)


async def produce_to_partition(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    topic = topic_param(request)
    partition = partition_param(request)
    acks = parse_acks(request.query.get("acks"))
    forwarded = is_forwarded(request)
    target = await locate_target(broker, topic, partition, forwarded)
    body = await read_body(request)
    if isinstance(target, str):
        return await _pass_through(request, target, topic, partition, acks, body)
    parsed = parse_produce(body)
    if parsed.partitions is not None:
        for i, p in enumerate(parsed.partitions):
            if p is not None and p != partition:
                raise InvalidRequest(
                    f"records[{i}].partition is {p} but the path names {partition}"
                )
    target.check_can_append(acks)
    request.app[METRICS_KEY].produce_requests.inc()
    writes: Writes = {partition: range(len(parsed))}
    return await _produce(request, topic, parsed, writes, {partition: target}, acks)


def add_routes(app: web.Application) -> None:
    app[STICKY_KEY] = StickyPartitioner()
    app[BACKGROUND_KEY] = BackgroundWrites(MAX_ACKS0_WRITES_IN_FLIGHT)
    app.router.add_post("/v1/topics/{topic}/records", produce_to_topic)
    app.router.add_post("/v1/topics/{topic}/partitions/{partition}/records", produce_to_partition)
