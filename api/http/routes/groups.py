"""Consumer groups: /v1/groups/{group}/... (contract section "Consumer groups").

Any broker answers: a request for a group another broker coordinates is forwarded to
it once (a forwarded request that finds no coordinator here answers 503
COORDINATOR_NOT_AVAILABLE, and the client retries). Handlers only parse and render;
the coordinator (api/broker/coordinator.py) and metadata/groups.py hold the rules.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftka.api.acl import Operation
from raftka.api.broker.coordinator import JoinRequest
from raftka.api.http.auth import authorize_topic, visible
from raftka.api.http.context import (
    BROKER_KEY,
    COORDINATOR_KEY,
    FORWARDER_KEY,
    is_forwarded,
    json_response,
    long_poll,
    read_body,
)
from raftka.api.http.records import int_param, json_object
from raftka.metadata.errors import CoordinatorNotAvailable, InvalidRequest, LeaderNotAvailable
from raftka.metadata.groups import (
    ASSIGNORS,
    AUTO_OFFSET_RESETS,
    DEFAULT_ASSIGNOR,
    MAX_SESSION_TIMEOUT_MS,
    MIN_SESSION_TIMEOUT_MS,
    validate_group_id,
)
from raftka.metadata.model import validate_topic_name
from raftka.metadata.records import is_int

JOIN_FIELDS = frozenset(
    {"topics", "session_timeout_ms", "auto_commit", "auto_offset_reset", "assignor"}
)
DEFAULT_MAX_RECORDS = 500
MAX_CONSUME_RECORDS = 100_000
MAX_COMMIT_OFFSETS = 10_000
MAX_OFFSET = 2**63 - 1


def _group_param(request: web.Request) -> str:
    group_id = request.match_info["group"]
    problem = validate_group_id(group_id)
    if problem is not None:
        raise InvalidRequest(problem)
    return group_id


async def _at_coordinator(request: web.Request, wait_ms: int = 0) -> web.Response | None:
    """None when this broker coordinates the group; else the coordinator's answer."""
    broker = request.app[BROKER_KEY]
    group_id = _group_param(request)
    coordinator = request.app[COORDINATOR_KEY].coordinator_id(group_id)
    if coordinator == broker.broker_id:
        return None
    url = None if coordinator is None else broker.broker_url(coordinator)
    if url is None or is_forwarded(request):
        raise CoordinatorNotAvailable(
            f"group {group_id}'s coordinator is moving or unreachable; retry shortly"
        )
    # body_exists, not can_read_body: a join has read its body already (to check the ACLs).
    body = await read_body(request) if request.body_exists else None
    wait_s = min(wait_ms, broker.settings.max_fetch_wait_ms) / 1000
    try:
        return await request.app[FORWARDER_KEY].proxy(
            request.method, url + request.path_qs, body, extra_wait_s=wait_s
        )
    except LeaderNotAvailable:
        raise CoordinatorNotAvailable(
            f"group {group_id}'s coordinator (broker {coordinator}) is unreachable; retry shortly"
        ) from None


def _parse_join(doc: dict[str, Any], default_session_timeout_ms: int) -> JoinRequest:
    unknown = doc.keys() - JOIN_FIELDS
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    topics = doc.get("topics")
    if not isinstance(topics, list) or not topics:
        raise InvalidRequest("topics must be a non-empty list of topic names")
    for topic in topics:
        problem = validate_topic_name(topic)
        if problem is not None:
            raise InvalidRequest(problem)
    timeout = doc.get("session_timeout_ms", default_session_timeout_ms)
    if not is_int(timeout) or not MIN_SESSION_TIMEOUT_MS <= timeout <= MAX_SESSION_TIMEOUT_MS:
        raise InvalidRequest(
            f"session_timeout_ms must be an integer from {MIN_SESSION_TIMEOUT_MS} "
            f"to {MAX_SESSION_TIMEOUT_MS}"
        )
    auto_commit = doc.get("auto_commit", False)
    if not isinstance(auto_commit, bool):
        raise InvalidRequest("auto_commit must be true or false")
    reset = doc.get("auto_offset_reset", "earliest")
    if reset not in AUTO_OFFSET_RESETS:
        raise InvalidRequest(f"auto_offset_reset must be one of {', '.join(AUTO_OFFSET_RESETS)}")
    assignor = doc.get("assignor", DEFAULT_ASSIGNOR)
    if assignor not in ASSIGNORS:
        raise InvalidRequest(f"assignor must be one of {', '.join(ASSIGNORS)}")
    return JoinRequest(tuple(topics), timeout, auto_commit, reset, assignor)


def _generation(doc: dict[str, Any]) -> int:
    generation = doc.get("generation")
    if not isinstance(generation, int) or not is_int(generation) or generation < 0:
        raise InvalidRequest("generation must be a non-negative integer")
    return generation


def _parse_offsets(raw: Any) -> tuple[tuple[str, int, int], ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_COMMIT_OFFSETS:
        raise InvalidRequest(f"offsets must be a list of 1-{MAX_COMMIT_OFFSETS} entries")
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"offsets[{i}] must be an object")
        topic, partition, offset = entry.get("topic"), entry.get("partition"), entry.get("offset")
        problem = validate_topic_name(topic)
        if problem is not None:
            raise InvalidRequest(f"offsets[{i}]: {problem}")
        if not isinstance(partition, int) or not is_int(partition) or partition < 0:
            raise InvalidRequest(f"offsets[{i}].partition must be a non-negative integer")
        if not isinstance(offset, int) or not is_int(offset) or not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequest(f"offsets[{i}].offset must be an integer from 0 to {MAX_OFFSET}")
        out.append((str(topic), partition, offset))
    return tuple(out)


async def join(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    doc = json_object(await read_body(request))
    join_request = _parse_join(doc, broker.settings.group_session_timeout_ms)
    for topic in join_request.topics:  # checked here: the coordinator trusts a forward
        authorize_topic(request, Operation.CONSUME, topic)
    forwarded = await _at_coordinator(request)
    if forwarded is not None:
        return forwarded
    answer = await request.app[COORDINATOR_KEY].join(_group_param(request), join_request)
    return json_response(answer)


async def heartbeat(request: web.Request) -> web.Response:
    forwarded = await _at_coordinator(request)
    if forwarded is not None:
        return forwarded
    doc = json_object(await read_body(request))
    answer = await request.app[COORDINATOR_KEY].heartbeat(
        _group_param(request), request.match_info["member"], _generation(doc)
    )
    return json_response(answer)


async def leave(request: web.Request) -> web.Response:
    forwarded = await _at_coordinator(request)
    if forwarded is not None:
        return forwarded
    await request.app[COORDINATOR_KEY].leave(_group_param(request), request.match_info["member"])
    return web.Response(status=204)


async def consume(request: web.Request) -> web.Response:
    q = request.query
    max_records = int_param(
        q, "max_records", DEFAULT_MAX_RECORDS, minimum=1, maximum=MAX_CONSUME_RECORDS
    )
    max_wait_ms = int_param(q, "max_wait_ms", 0)
    async with long_poll(request, max_wait_ms):
        forwarded = await _at_coordinator(request, max_wait_ms)
        if forwarded is not None:
            return forwarded
        records = await request.app[COORDINATOR_KEY].consume(
            _group_param(request), request.match_info["member"], max_records, max_wait_ms
        )
    return json_response({"records": records})


async def commit(request: web.Request) -> web.Response:
    forwarded = await _at_coordinator(request)
    if forwarded is not None:
        return forwarded
    doc = json_object(await read_body(request))
    member_id = doc.get("member_id")
    if not isinstance(member_id, str) or not member_id:
        raise InvalidRequest("member_id must be a non-empty string")
    await request.app[COORDINATOR_KEY].commit(
        _group_param(request), member_id, _generation(doc), _parse_offsets(doc.get("offsets"))
    )
    return web.Response(status=204)


async def committed(request: web.Request) -> web.Response:
    forwarded = await _at_coordinator(request)
    if forwarded is not None:
        return forwarded
    offsets = await request.app[COORDINATOR_KEY].committed(_group_param(request))
    return json_response({"offsets": offsets})


async def describe(request: web.Request) -> web.Response:
    forwarded = await _at_coordinator(request)
    if forwarded is not None:
        return forwarded
    return json_response(request.app[COORDINATOR_KEY].describe(_group_param(request)))


async def list_groups(request: web.Request) -> web.Response:
    """Every group the metadata knows (with members or committed offsets), as Kafka's
    ListGroups: from this broker's metadata, so possibly a moment behind."""
    broker = request.app[BROKER_KEY]
    return json_response({"groups": visible(request, broker.state.groups, groups=True)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/groups", list_groups)
    app.router.add_post("/v1/groups/{group}/members", join)
    app.router.add_post("/v1/groups/{group}/members/{member}/heartbeat", heartbeat)
    app.router.add_delete("/v1/groups/{group}/members/{member}", leave)
    app.router.add_get("/v1/groups/{group}/members/{member}/records", consume)
    app.router.add_post("/v1/groups/{group}/offsets", commit)
    app.router.add_get("/v1/groups/{group}/offsets", committed)
    app.router.add_get("/v1/groups/{group}", describe)
