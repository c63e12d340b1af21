"""Produce: POST /v1/topics/{topic}/records and /v1/topics/{topic}/partitions/{p}/records.

Chooses each record's partition (explicit, Kafka's murmur2 on the key, or round-robin),
appends the partitions this broker leads and forwards the others to their leaders, then
answers the offsets in the order the records were sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

import orjson
from aiohttp import web

from raftka.api.broker import Broker
from raftka.api.context import (
    BROKER_KEY,
    FORWARDER_KEY,
    METRICS_KEY,
    json_response,
    partition_param,
    read_body,
    topic_param,
)
from raftka.api.forward import Forwarder, is_forwarded
from raftka.api.partitioner import RoundRobin, partition_for_key
from raftka.api.records import ParsedRecord, parse_acks, parse_produce
from raftka.metadata.errors import (
    InvalidRequest,
    LeaderNotAvailable,
    UnknownPartition,
    error_for_code,
)

log = logging.getLogger(__name__)

ROUND_ROBIN_KEY = web.AppKey("round_robin", RoundRobin)
# acks=0 writes still running after their answer; kept so they are not garbage-collected.
BACKGROUND_KEY = web.AppKey("acks0_writes", set)
# Past this many unfinished acks=0 writes, an acks=0 request waits for its own write
# (push-back) instead of adding to an unbounded backlog.
MAX_ACKS0_WRITES_IN_FLIGHT = 256


async def preflight(
    broker: Broker, topic: str, partitions: Iterable[int], acks: str, forwarded: bool
) -> None:
    """Everything that can refuse a write, checked for every partition before any is
    written, so a refused request leaves nothing behind. (A leader elsewhere can still
    fail after this; each partition's batch is then all or nothing on its own.)"""
    for partition in partitions:
        location = broker.locate(topic, partition)
        replica = broker.local_leader(topic, partition)
        if replica is not None:
            await broker.prepare_append(replica)
            replica.check_can_append(acks)
            continue
        leader = location.partition.leader
        if forwarded or leader is None or leader == broker.broker_id:
            raise LeaderNotAvailable(
                f"{topic}-{partition} has no leader that can take writes right now"
            )
        if broker.broker_url(leader) is None:
            raise LeaderNotAvailable(
                f"the leader of {topic}-{partition} (broker {leader}) is unknown"
            )


async def append_to_partition(
    broker: Broker,
    forwarder: Forwarder,
    topic: str,
    partition: int,
    records: Sequence[ParsedRecord],
    acks: str,
    forwarded: bool,
) -> int:
    """Writes records to one partition (here or at its leader); returns the base offset."""
    location = broker.locate(topic, partition)
    replica = broker.local_leader(topic, partition)
    if replica is not None:
        await broker.prepare_append(replica)
        replica.check_can_append(acks)
        now_ms = int(time.time() * 1000)
        info = replica.append(
            [(ts if ts is not None else now_ms, body) for _, _, ts, body in records]
        )
        broker.flusher.mark_dirty(replica.log)
        if acks != "0":
            await broker.flusher.wait_durable(replica.log)
        return info.base_offset
    leader = location.partition.leader
    if forwarded or leader is None or leader == broker.broker_id:
        raise LeaderNotAvailable(
            f"{topic}-{partition} has no leader that can take writes right now"
        )
    url = broker.broker_url(leader)
    if url is None:
        raise LeaderNotAvailable(f"the leader of {topic}-{partition} (broker {leader}) is unknown")
    body = b'{"records":[' + b",".join(_record_json(r) for r in records) + b"]}"
    status, payload, _ = await forwarder.send(
        "POST", f"{url}/v1/topics/{topic}/partitions/{partition}/records?acks={acks}", body=body
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


async def _produce(
    request: web.Request, topic: str, groups: dict[int, list[tuple[int, ParsedRecord]]], acks: str
) -> web.Response:
    broker = request.app[BROKER_KEY]
    forwarder = request.app[FORWARDER_KEY]
    forwarded = is_forwarded(request)
    total = sum(len(g) for g in groups.values())
    metrics = request.app[METRICS_KEY]
    metrics.produce_requests.inc()

    async def write(partition: int, items: list[tuple[int, ParsedRecord]]) -> tuple[int, int]:
        base = await append_to_partition(
            broker, forwarder, topic, partition, [r for _, r in items], acks, forwarded
        )
        # Counted here, once written, so acks=0 writes (finished after the answer) count too.
        metrics.produced_records.inc(len(items))
        return partition, base

    if acks == "0" or len(groups) > 1:
        # One partition with acks>=1 is checked by its own write, before it writes.
        await preflight(broker, topic, groups, acks, forwarded)
    if acks == "0":
        writes = asyncio.gather(*(write(p, g) for p, g in groups.items()))
        pending = request.app[BACKGROUND_KEY]
        if len(pending) < MAX_ACKS0_WRITES_IN_FLIGHT:
            pending.add(writes)
            writes.add_done_callback(_finish_background(pending))
        else:
            await writes
        offsets: list[dict[str, int | None]] = [{"partition": 0, "offset": None}] * total
        for p, items in groups.items():
            for i, _ in items:
                offsets[i] = {"partition": p, "offset": None}
        return json_response({"offsets": offsets})
    if len(groups) == 1:  # the partition endpoint: no task or gather for one write
        bases = dict([await write(*next(iter(groups.items())))])
    else:
        bases = dict(await asyncio.gather(*(write(p, g) for p, g in groups.items())))
    # One small bytes object per record, joined once: cheaper than dicts + orjson.
    answer: list[bytes] = [b""] * total
    for p, items in groups.items():
        for offset, (i, _) in enumerate(items, bases[p]):
            answer[i] = b'{"partition":%d,"offset":%d}' % (p, offset)
    return web.Response(
        body=b'{"offsets":[' + b",".join(answer) + b"]}", content_type="application/json"
    )


def _finish_background(pending: set[asyncio.Future[object]]):
    def done(task: asyncio.Future[object]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("an acks=0 write failed: %s", task.exception())

    return done


async def produce_to_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    topic = topic_param(request)
    acks = parse_acks(request.query.get("acks"))
    parsed = parse_produce(await read_body(request))
    if parsed.producer is not None:
        raise InvalidRequest("producer is accepted only on the partition endpoint")
    count = len(broker.locate(topic, 0).topic.partitions)
    round_robin = request.app[ROUND_ROBIN_KEY]
    groups: dict[int, list[tuple[int, ParsedRecord]]] = {}
    for i, record in enumerate(parsed.records):
        partition, key, _, _ = record
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, count)
            else:
                partition = round_robin.next_partition(topic, count)
        elif partition >= count:
            raise UnknownPartition(f"records[{i}].partition {partition}: {topic!r} has {count}")
        groups.setdefault(partition, []).append((i, record))
    return await _produce(request, topic, groups, acks)


async def produce_to_partition(request: web.Request) -> web.Response:
    topic = topic_param(request)
    partition = partition_param(request)
    acks = parse_acks(request.query.get("acks"))
    request.app[BROKER_KEY].locate(topic, partition)
    parsed = parse_produce(await read_body(request))
    if parsed.producer is not None:
        raise InvalidRequest(
            "idempotent producers are not supported yet: they arrive with replication"
        )
    for i, (p, _, _, _) in enumerate(parsed.records):
        if p is not None and p != partition:
            raise InvalidRequest(f"records[{i}].partition is {p} but the path names {partition}")
    return await _produce(request, topic, {partition: list(enumerate(parsed.records))}, acks)


def add_routes(app: web.Application) -> None:
    app[ROUND_ROBIN_KEY] = RoundRobin()
    app[BACKGROUND_KEY] = set()
    app.router.add_post("/v1/topics/{topic}/records", produce_to_topic)
    app.router.add_post("/v1/topics/{topic}/partitions/{partition}/records", produce_to_partition)
