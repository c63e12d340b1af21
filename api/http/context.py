"""What every handler reaches through the application: the broker, the forwarder, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from raftka.api.broker.broker import Broker
from raftka.api.broker.coordinator import GroupCoordinator
from raftka.api.broker_auth import BROKER_AUTH_HEADER
from raftka.api.http.connections import ConnectionGuard
from raftka.api.http.forward import FORWARDED_HEADER, Forwarder
from raftka.api.http.metrics import BrokerMetrics
from raftka.api.http.request_budget import InFlightBytes, LongPolls
from raftka.metadata.errors import InvalidRequest, RequestTooLarge
from raftka.metadata.model import validate_topic_name

BROKER_KEY = web.AppKey("broker", Broker)
FORWARDER_KEY = web.AppKey("forwarder", Forwarder)
METRICS_KEY = web.AppKey("metrics", BrokerMetrics)
COORDINATOR_KEY = web.AppKey("coordinator", GroupCoordinator)
CONNECTIONS_KEY = web.AppKey("connections", ConnectionGuard)
IN_FLIGHT_KEY = web.AppKey("in_flight_bytes", InFlightBytes)
LONG_POLLS_KEY = web.AppKey("long_polls", LongPolls)
# Per request: whether it proved to come from a broker, and the body bytes it reserved.
_FROM_BROKER = web.RequestKey("from_broker", bool)
RESERVED_BYTES = web.RequestKey("reserved_bytes", int)
# Per request: the authenticated user's name (api/http/auth.py), absent on an open cluster.
USER_NAME = web.RequestKey("user", str)


# Forwarding re-encodes records a little larger (explicit "key": null, "headers": {}), so a
# body a client was allowed to send must also fit when it arrives forwarded.
FORWARDED_BODY_ALLOWANCE = 2


def is_from_broker(request: web.Request) -> bool:
    """Whether the request proved it comes from a broker of this cluster (api/broker_auth.py);
    always False on a cluster without a secret. Checked once per request."""
    proven = request.get(_FROM_BROKER)
    if proven is None:
        header = request.headers.get(BROKER_AUTH_HEADER)
        auth = request.app[BROKER_KEY].broker_auth
        proven = header is not None and auth.verify(request.method, request.path, header)
        request[_FROM_BROKER] = proven
    return proven


def is_forwarded(request: web.Request) -> bool:
    """Whether another broker forwarded the request (so it must not be forwarded again).
    With a cluster secret only a proven broker's word counts."""
    if FORWARDED_HEADER not in request.headers:
        return False
    return not request.app[BROKER_KEY].broker_auth.enabled or is_from_broker(request)


async def read_body(request: web.Request) -> bytes:
    """The request body, refused with 413 past `max_request_bytes` unless it comes from a
    broker (the server-wide cap, `client_max_size`, is larger only to admit forwarded
    bodies), and with 429 when the broker's budget of bytes in flight is spent."""
    if RESERVED_BYTES in request:  # read before (e.g. checked, then forwarded): same bytes
        return await request.read()
    limit = request.app[BROKER_KEY].settings.max_request_bytes
    from_broker = is_from_broker(request)
    declared = request.content_length or 0
    if not from_broker and declared > limit:
        raise RequestTooLarge(f"the request body exceeds {limit} bytes")
    budget = request.app[IN_FLIGHT_KEY]
    budget.reserve(declared)
    request[RESERVED_BYTES] = declared
    raw = await request.read()
    if not from_broker and len(raw) > limit:
        raise RequestTooLarge(f"the request body exceeds {limit} bytes")
    if len(raw) > declared:  # a chunked body: counted once read
        budget.reserve(len(raw) - declared)
        request[RESERVED_BYTES] += len(raw) - declared
    return raw


@contextlib.asynccontextmanager
async def long_poll(request: web.Request, wait_ms: int) -> AsyncIterator[None]:
    """Counts a long-poll against its client's share (a broker's forwarded one was counted
    where it came in)."""
    if wait_ms <= 0 or is_from_broker(request):
        yield
        return
    client = request.get(USER_NAME) or request.remote or "unknown"
    polls = request.app[LONG_POLLS_KEY]
    polls.acquire(client)
    try:
        yield
    finally:
        polls.release(client)


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
