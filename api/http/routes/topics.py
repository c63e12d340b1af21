"""Topic administration: POST/GET /v1/topics, GET/DELETE /v1/topics/{topic}."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from aiohttp import web

from raftka.api.broker.broker import Broker
from raftka.api.http.context import BROKER_KEY, FORWARDER_KEY, json_response, read_body, topic_param
from raftka.api.http.forward import Forwarder
from raftka.api.http.records import is_int, json_object
from raftka.metadata.commands import CreateTopic
from raftka.metadata.controller import plan_create_topic
from raftka.metadata.errors import (
    InvalidRequest,
    RaftkaError,
    TopicExists,
    UnknownTopic,
    error_for_code,
)
from raftka.metadata.model import InvalidConfig, TopicConfig, TopicRecord, validate_topic_name
from raftka.metadata.state import Rejected

# At replication factor 3 a topic this large fits one metadata log entry on up to about
# 2,000 brokers (its CreateTopic compresses to ~0.7 KB on 3 brokers, ~4 KB on 30); a topic
# that does not fit is refused by plan_create_topic with 400 INVALID_REQUEST.
MAX_PARTITIONS = 10_000
DESCRIBE_PEER_TIMEOUT_S = 2.0
CREATE_FIELDS = frozenset({"name", "partitions", "replication_factor", "config"})


def create_topic_command(broker: Broker, doc: dict[str, Any]) -> CreateTopic:
    unknown = doc.keys() - CREATE_FIELDS
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    name = doc.get("name")
    if not isinstance(name, str):
        raise InvalidRequest("name must be a string")
    if (problem := validate_topic_name(name)) is not None:
        raise InvalidRequest(problem)
    partitions = doc.get("partitions", 1)
    if not is_int(partitions) or not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidRequest(f"partitions must be an integer from 1 to {MAX_PARTITIONS}")
    rf = doc.get("replication_factor", 1)
    if not is_int(rf) or rf < 1:
        raise InvalidRequest("replication_factor must be a positive integer")
    raw_config = doc.get("config", {})
    if raw_config is None:
        raw_config = {}
    if not isinstance(raw_config, dict):
        raise InvalidRequest("config must be an object")
    defaults = {
        "segment_bytes": broker.settings.default_segment_bytes,
        "retention_ms": broker.settings.default_retention_ms,
    }
    try:
        config = TopicConfig.from_json({**defaults, **raw_config})
    except InvalidConfig as exc:
        raise InvalidRequest(str(exc)) from None
    if config.min_insync_replicas > rf:
        raise InvalidRequest(
            f"min_insync_replicas ({config.min_insync_replicas}) cannot exceed "
            f"replication_factor ({rf}): no write could ever be acknowledged with acks=all"
        )
    state = broker.state
    if name in state.topics:
        # Answered before placement; the state machine checks it again when applying.
        raise TopicExists(f"topic {name!r} already exists")
    plan = plan_create_topic(
        state,
        name,
        uuid.uuid4().hex,
        partitions,
        rf,
        config,
        command_id=uuid.uuid4().hex,
        max_partitions_per_broker=broker.settings.max_partitions_per_broker,
    )
    if isinstance(plan, Rejected):
        raise error_for_code(plan.code, plan.message)
    return plan


async def create_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    command = create_topic_command(broker, json_object(await read_body(request)))
    topic = await broker.topics.create(command)
    return json_response(await describe(broker, request.app[FORWARDER_KEY], topic), 201)


async def list_topics(request: web.Request) -> web.Response:
    return json_response({"topics": sorted(request.app[BROKER_KEY].state.topics)})


async def get_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    name = topic_param(request)
    topic = broker.state.topics.get(name)
    if topic is None:
        raise UnknownTopic(f"topic {name!r} does not exist")
    return json_response(await describe(broker, request.app[FORWARDER_KEY], topic))


async def delete_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    name = topic_param(request)
    if name not in broker.state.topics:
        raise UnknownTopic(f"topic {name!r} does not exist")
    await broker.topics.delete(name)
    return web.Response(status=204)


async def describe(broker: Broker, forwarder: Forwarder, topic: TopicRecord) -> dict[str, Any]:
    """The topic as the contract shows it; offsets come from each partition's leader."""
    offsets = await broker.local_offsets(topic.name)
    leaders = {
        p.leader for p in topic.partitions if p.leader is not None and p.leader != broker.broker_id
    }

    async def ask(leader: int) -> dict[str, list[int]]:
        url = broker.broker_url(leader)
        if url is None:
            return {}
        try:
            status, body, _ = await asyncio.wait_for(
                forwarder.send("GET", f"{url}/internal/topics/{topic.name}/offsets"),
                DESCRIBE_PEER_TIMEOUT_S,
            )
        except (RaftkaError, TimeoutError):
            return {}
        return orjson.loads(body).get("partitions", {}) if status == 200 else {}

    for answer in await asyncio.gather(*(ask(b) for b in sorted(leaders))):
        offsets.update(answer)
    partitions = []
    for p in topic.partitions:
        lso, hw = offsets.get(str(p.partition), (None, None))
        partitions.append(
            {
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": list(p.replicas),
                "isr": list(p.isr),
                "log_start_offset": lso,
                "high_watermark": hw,
            }
        )
    return {
        "name": topic.name,
        "topic_id": topic.topic_id,
        "config": topic.config.to_json(),
        "partitions": partitions,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/topics", create_topic)
    app.router.add_get("/v1/topics", list_topics)
    app.router.add_get("/v1/topics/{topic}", get_topic)
    app.router.add_delete("/v1/topics/{topic}", delete_topic)
