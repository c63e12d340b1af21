"""What every handler reaches through the application: the broker, the forwarder, metrics."""

from __future__ import annotations

import orjson
from aiohttp import web

from raftka.api.broker.broker import Broker
from raftka.api.broker.coordinator import GroupCoordinator
from raftka.api.http.connections import ConnectionGuard
from raftka.api.http.forward import Forwarder, is_forwarded
from raftka.api.http.metrics import BrokerMetrics
from raftka.metadata.errors import InvalidRequest, RequestTooLarge
from raftka.metadata.model import validate_topic_name

BROKER_KEY = web.AppKey("broker", Broker)
FORWARDER_KEY = web.AppKey("forwarder", Forwarder)
METRICS_KEY = web.AppKey("metrics", BrokerMetrics)
COORDINATOR_KEY = web.AppKey("coordinator", GroupCoordinator)
CONNECTIONS_KEY = web.AppKey("connections", ConnectionGuard)


# Forwarding re-encodes records a little larger (explicit "key": null, "headers": {}), so a
# body a client was allowed to send must also fit when it arrives forwarded.
FORWARDED_BODY_ALLOWANCE = 2


async def read_body(request: web.Request) -> bytes:
    """The request body, refused with 413 past `max_request_bytes` for a client (the
    server-wide cap, `client_max_size`, is larger only to admit forwarded bodies)."""
    limit = request.app[BROKER_KEY].settings.max_request_bytes
    if not is_forwarded(request) and (request.content_length or 0) > limit:
        raise RequestTooLarge(f"the request body exceeds {limit} bytes")
    raw = await request.read()
    if not is_forwarded(request) and len(raw) > limit:
        raise RequestTooLarge(f"the request body exceeds {limit} bytes")
    return raw


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def topic_param(request: web.Request) -> str:
    name = request.match_info["topic"]
    problem = validate_topic_name(name)
    if problem is not None:
        raise InvalidRequest(problem)
    return name


def int_path_param(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is True but int() refuses it
        raise InvalidRequest(f"the {name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def partition_param(request: web.Request) -> int:
    return int_path_param(request, "partition")
