"""Fetch: GET /v1/topics/{topic}/partitions/{p}/records and .../offsets.

The records come back as the log stored them: their JSON fragments are spliced into the
response without being decoded (docs/storage.md). A partition led elsewhere is read at
its leader.
"""

from __future__ import annotations

from aiohttp import web

from raftka.api.http.context import (
    BROKER_KEY,
    FORWARDER_KEY,
    METRICS_KEY,
    is_forwarded,
    json_response,
    long_poll,
    partition_param,
    topic_param,
)
from raftka.api.http.partition_reader import read_leading
from raftka.api.http.records import int_param, parse_int
from raftka.metadata.errors import InvalidRequest, LeaderNotAvailable
from raftka.replication.partition import PartitionReplica

# An answer with more record bytes is written in three pieces, so that its records are not
# copied again: into one body here, then with the headers (aiohttp joins those on Python
# before 3.12.9). Not the replica fetch answer, which measured better in one write
# (docs/benchmarks.md, "Profile findings", section 9).
LARGE_ANSWER_BYTES = 64 * 1024
RECORDS_HEAD = b'{"records":['
DEFAULT_MAX_RECORDS = 500
MAX_FETCH_RECORDS = 100_000
DEFAULT_MAX_BYTES = 1024 * 1024
MAX_FETCH_BYTES = 64 * 1024 * 1024


async def _leader_or_forward(
    request: web.Request, wait_ms: int = 0
) -> PartitionReplica | web.Response:
    broker = request.app[BROKER_KEY]
    topic = topic_param(request)
    partition = partition_param(request)
    location = await broker.locate_soon(topic, partition, forwarded=is_forwarded(request))
    replica = await broker.local_leader_soon(topic, partition, forwarded=is_forwarded(request))
    if replica is not None:
        return replica
    leader = location.partition.leader
    if is_forwarded(request) or leader is None or leader == broker.broker_id:
        raise LeaderNotAvailable(f"{topic}-{partition} has no available leader right now")
    url = broker.broker_url(leader)
    if url is None:
        raise LeaderNotAvailable(f"the leader of {topic}-{partition} (broker {leader}) is unknown")
    wait_s = min(wait_ms, broker.settings.max_fetch_wait_ms) / 1000
    return await request.app[FORWARDER_KEY].proxy("GET", url + request.path_qs, extra_wait_s=wait_s)


async def fetch(request: web.Request) -> web.StreamResponse:
    q = request.query
    offset = int_param(q, "offset", None)
    max_records = int_param(
        q, "max_records", DEFAULT_MAX_RECORDS, minimum=1, maximum=MAX_FETCH_RECORDS
    )
    max_bytes = int_param(q, "max_bytes", DEFAULT_MAX_BYTES, minimum=1, maximum=MAX_FETCH_BYTES)
    max_wait_ms = int_param(q, "max_wait_ms", 0)
    async with long_poll(request, max_wait_ms):
        target = await _leader_or_forward(request, max_wait_ms)
        if isinstance(target, web.Response):
            return target
        replica, result = await read_leading(
            request.app[BROKER_KEY], target, offset, max_records, max_bytes, max_wait_ms
        )
    metrics = request.app[METRICS_KEY]
    metrics.fetch_requests.inc()
    metrics.fetched_records.inc(result.record_count)
    tail = b'],"next_offset":%d,"high_watermark":%d,"log_start_offset":%d}' % (
        result.next_offset,
        replica.high_watermark,
        replica.log_start_offset,
    )
    return await _answer(request, result.records_json, tail)


async def _answer(request: web.Request, records_json: bytes, tail: bytes) -> web.StreamResponse:
    if len(records_json) < LARGE_ANSWER_BYTES:
        body = b"".join((RECORDS_HEAD, records_json, tail))
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse()
    response.content_type = "application/json"
    response.content_length = len(RECORDS_HEAD) + len(records_json) + len(tail)
    await response.prepare(request)
    await response.write(RECORDS_HEAD)  # sent with the headers
    await response.write(records_json)
    await response.write_eof(tail)
    return response


async def offsets(request: web.Request) -> web.Response:
    raw = request.query.get("timestamp", "latest")
    target = await _leader_or_forward(request)
    if isinstance(target, web.Response):
        return target
    replica = target
    if raw == "earliest":
        return json_response({"offset": replica.log_start_offset})
    if raw == "latest":
        return json_response({"offset": replica.high_watermark})
    timestamp_ms = parse_int(raw)
    if timestamp_ms is None:
        raise InvalidRequest("timestamp must be earliest, latest or milliseconds")
    if timestamp_ms < 0:
        raise InvalidRequest("timestamp must be earliest, latest or milliseconds >= 0")
    return json_response({"offset": replica.offset_for_timestamp(timestamp_ms)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/topics/{topic}/partitions/{partition}/records", fetch)
    app.router.add_get("/v1/topics/{topic}/partitions/{partition}/offsets", offsets)
