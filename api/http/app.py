"""The aiohttp application: routes, the error middleware and the request size limit.

Handlers (api/http/routes/) translate HTTP to calls on the broker and results to JSON; every
failure is a `RaftkaError` rendered here in the contract's shape. No protocol rule lives
in this module or in a handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from raftka.api.broker.broker import Broker
from raftka.api.broker.coordinator import GroupCoordinator
from raftka.api.http.connections import ConnectionGuard, ConnectionLimits, guard_middleware
from raftka.api.http.context import (
    BROKER_KEY,
    CONNECTIONS_KEY,
    COORDINATOR_KEY,
    FORWARDED_BODY_ALLOWANCE,
    FORWARDER_KEY,
    METRICS_KEY,
    json_response,
)
from raftka.api.http.forward import Forwarder, is_forwarded
from raftka.api.http.metrics import BrokerMetrics
from raftka.api.http.partition_reader import PartitionReader
from raftka.api.http.routes import cluster, fetch, groups, internal, produce, topics
from raftka.metadata.errors import (
    InsufficientStorage,
    InvalidRequest,
    LeaderNotAvailable,
    MethodNotAllowed,
    NotFound,
    RaftkaError,
    RequestTooLarge,
    RetriableError,
)
from raftka.storage.disk import is_disk_full

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: RaftkaError) -> web.Response:
    response = json_response(error.to_json(), error.status)
    if isinstance(error, RetriableError):
        response.headers["Retry-After"] = str(error.retry_after_s)
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RaftkaError as exc:
        request.app[METRICS_KEY].errors.labels(exc.code).inc()
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[BROKER_KEY].settings.max_request_bytes
        if not is_forwarded(request):
            return error_response(RequestTooLarge(f"the request body exceeds {limit} bytes"))
        return error_response(
            RequestTooLarge(f"the forwarded body exceeds {limit * FORWARDED_BODY_ALLOWANCE} bytes")
        )
    except web.HTTPNotFound:
        return error_response(NotFound(f"no route for {request.method} {request.path}"))
    except web.HTTPMethodNotAllowed:
        return error_response(
            MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        )
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(InvalidRequest(exc.reason))
        raise
    except ConnectionResetError:
        raise  # the client is gone: guard_middleware ends the request quietly
    except Exception as exc:
        if is_disk_full(exc):
            # A write the free-space check did not foresee met a full disk; what it
            # wrote was cut back (or went to a temporary file), so it is retriable.
            log.warning("%s %s: the disk is full: %s", request.method, request.path, exc)
            error = InsufficientStorage(f"the broker's disk is full: {exc}")
            request.app[METRICS_KEY].errors.labels(error.code).inc()
            return error_response(error)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response(
            {"error": {"code": "INTERNAL_ERROR", "message": "internal error; see the broker log"}},
            500,
        )


# Answered while the metadata is still loading; everything else waits for it.
PATHS_SERVED_WHILE_STARTING = frozenset(
    {"/healthz", "/metrics", "/v1/cluster", "/internal/metadata"}
)


@web.middleware
async def readiness_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Until its metadata is complete a broker would answer 404 for topics that exist
    (or place new ones on no brokers): answer a retriable 503 instead."""
    broker = request.app[BROKER_KEY]
    if not broker.ready and request.path not in PATHS_SERVED_WHILE_STARTING:
        raise LeaderNotAvailable(
            f"broker {broker.broker_id} is starting: its metadata is not loaded yet"
        )
    return await handler(request)


def create_app(broker: Broker, *, max_connections: int | None = None) -> web.Application:
    """The broker's application; `max_connections` overrides the setting (the server
    lowers it to what the process's file handle limit allows)."""
    s = broker.settings
    guard = ConnectionGuard(
        ConnectionLimits(
            max_connections=s.max_connections if max_connections is None else max_connections,
            idle_timeout_s=s.connections_max_idle_ms / 1000,
            header_timeout_s=s.request_header_timeout_ms / 1000,
            body_timeout_s=s.request_body_timeout_ms / 1000,
        )
    )
    app = web.Application(
        middlewares=[guard_middleware(guard), errors_middleware, readiness_middleware],
        client_max_size=s.max_request_bytes * FORWARDED_BODY_ALLOWANCE,
    )
    app[BROKER_KEY] = broker
    app[CONNECTIONS_KEY] = guard
    forwarder = Forwarder(broker.settings.request_timeout_ms / 1000)
    app[FORWARDER_KEY] = forwarder
    app[METRICS_KEY] = BrokerMetrics(broker, guard.stats)
    app[COORDINATOR_KEY] = GroupCoordinator(broker, PartitionReader(broker, forwarder))
    for module in (cluster, topics, produce, fetch, groups, internal):
        module.add_routes(app)

    async def start_tasks(app: web.Application) -> None:
        app[COORDINATOR_KEY].start()
        guard.start()

    async def stop_tasks(app: web.Application) -> None:
        await guard.stop()
        await app[COORDINATOR_KEY].stop()
        await app[FORWARDER_KEY].close()

    app.on_startup.append(start_tasks)
    app.on_cleanup.append(stop_tasks)
    return app
