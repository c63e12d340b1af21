"""Topic administration: POST/GET /v1/topics, GET/DELETE /v1/topics/{topic}."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from raftka.api.acl import Operation
from raftka.api.broker.broker import Broker
from raftka.api.broker.topic_admin import create_topic_command
from raftka.api.http.auth import authorize_topic, visible
from raftka.api.http.context import BROKER_KEY, FORWARDER_KEY, json_response, read_body, topic_param
from raftka.api.http.forward import Forwarder
from raftka.api.http.records import json_object
from raftka.metadata.errors import (
    RaftkaError,
    UnknownTopic,
)
from raftka.metadata.model import TopicRecord

DESCRIBE_PEER_TIMEOUT_S = 2.0


async def create_topic(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    command = create_topic_command(broker, json_object(await read_body(request)))
    authorize_topic(request, Operation.ADMIN, command.name)
    topic = await broker.topics.create(command)
    return json_response(await describe(broker, request.app[FORWARDER_KEY], topic), 201)


async def list_topics(request: web.Request) -> web.Response:
    return json_response({"topics": visible(request, request.app[BROKER_KEY].state.topics)})


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
