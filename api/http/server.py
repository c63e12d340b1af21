"""Runs one broker process: HTTP server first, then the broker; clean stop on SIGTERM/SIGINT.

Stopping order matters: stop accepting requests, stop the broker's loops, flush and
close every log, then leave the metadata quorum.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import signal
from collections.abc import Callable
from pathlib import Path

import uvloop
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from raftka.api.broker.broker import Broker
from raftka.api.broker.open_files import (
    default_max_open_files,
    open_files_limit,
    raise_open_files_limit,
)
from raftka.api.http.app import create_app, error_json_response
from raftka.api.http.auth import USERS_KEY
from raftka.api.http.connections import ACCEPT_BACKLOG, connections_within_file_limit
from raftka.api.http.context import CONNECTIONS_KEY, COORDINATOR_KEY, METRICS_KEY
from raftka.api.kafka.server import KafkaServer
from raftka.api.listener import listen
from raftka.api.settings import ClusterConfig, Security, Settings
from raftka.api.tls import server_ssl_context

log = logging.getLogger(__name__)


def _log_security(config: ClusterConfig) -> None:
    sec = config.security
    if not sec.users:
        log.warning(
            "no [[users]] configured: the cluster is open, anyone who reaches it may "
            "produce, read and delete (docs/security.md)"
        )
    else:
        log.info("%d users configured: every request needs a token", len(sec.users))
    if sec.cluster_secret is None:
        log.warning(
            "no cluster_secret: brokers cannot prove themselves to each other and the Raft "
            "port takes any frame; fine on loopback for one user only (docs/security.md)"
        )
    log.info("serving %s", "HTTPS" if sec.tls else "plain HTTP")


def _kafka_security_protocol(security: Security) -> str:
    """Kafka's name for what the Kafka listener asks of its clients (security.protocol)."""
    return ("SASL_" if security.users else "") + ("SSL" if security.tls else "PLAINTEXT")


async def serve(config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
    _log_security(config)
    broker = Broker(config, broker_id, data_dir)
    loop = asyncio.get_running_loop()
    max_connections = _max_connections(config.settings)
    app = create_app(broker, max_connections=max_connections)
    tls_context = server_ssl_context(config.security)
    s = config.settings
    # aiohttp's own keep-alive timer runs from a response to the next request's complete
    # headers: past our idle and header timeouts, so ours always decide first.
    keepalive_s = (s.connections_max_idle_ms + s.request_header_timeout_ms) / 1000
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, keepalive_timeout=keepalive_s
    )
    await runner.setup()
    assert runner.server is not None
    # Our own listener instead of a web.TCPSite: its protocol factory is the connection
    # guard (api/http/connections.py), which caps and times every connection.
    listener = await listen(
        app[CONNECTIONS_KEY].protocol_factory(json_error_handlers(runner.server)),
        broker.address.http_host,
        broker.address.http_port,
        backlog=ACCEPT_BACKLOG,
        tls=tls_context,
    )
    log.info("broker %d listening on %s", broker_id, broker.address.url)
    kafka = KafkaServer(
        broker,
        app[COORDINATOR_KEY],
        max_connections,
        app[USERS_KEY],
        app[METRICS_KEY].kafka_requests,
    )
    if broker.address.kafka is not None:
        host, port = broker.address.kafka.rsplit(":", 1)
        await kafka.start(host, int(port), tls_context)
        log.info(
            "broker %d speaks the Kafka protocol (%s) on %s",
            broker_id,
            _kafka_security_protocol(config.security),
            broker.address.kafka,
        )
        if not config.security.users:
            log.warning(
                "no [[users]] configured: the Kafka listener is open too, no SASL "
                "(docs/security.md)"
            )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(broker.start())
    try:
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            log.info("broker %d is up", broker_id)
            # What exists now (modules, config, the loaded metadata and logs) lives as long
            # as the broker: out of the collector's sight, a full collection no longer walks
            # it. One took ~65 ms here, a stall of every request in flight (e2e p99).
            gc.freeze()
            await stopped
        else:
            starting.cancel()
    finally:
        log.info("broker %d stopping", broker_id)
        listener.close()
        await kafka.close()
        await broker.stop()
        await runner.cleanup()  # closes the open connections
        log.info("broker %d stopped", broker_id)


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp answers what fails before a handler runs (a malformed request line, invalid
    UTF-8 in the path, a URL or header over 8,190 bytes, too many headers, an unknown
    method) in plain text and logs a traceback for each: answer in the contract's shape
    instead, and log one debug line (a scanner must not be able to flood the log)."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer has begun: nothing more can be said
            raise ConnectionError("the response had already started")
        if status >= 500:
            log.error("error before a handler ran: %s", message or exc, exc_info=exc)
            code, text = "INTERNAL_ERROR", "internal error; see the broker log"
        else:
            log.debug("refused a malformed request: %s", message or exc)
            code = "REQUEST_TOO_LARGE" if status == 413 else "INVALID_REQUEST"
            text = _protocol_error_text(exc, message, status)
        response = error_json_response(code, text, status)
        response.force_close()
        return response


def json_error_handlers(server: web.Server) -> Callable[[], RequestHandler]:
    """What web.Server.__call__ does (it reads the same private kwargs), with our class."""
    loop = asyncio.get_running_loop()

    def make() -> RequestHandler:
        return JsonErrorRequestHandler(server, loop=loop, **server._kwargs)

    return make


def _protocol_error_text(exc: BaseException | None, message: str | None, status: int) -> str:
    text = message or (str(exc) if exc is not None else "") or f"HTTP {status}"
    # aiohttp's messages quote the offending bytes, which may be anything: keep it short.
    text = text.splitlines()[0] if text.strip() else f"HTTP {status}"
    return f"malformed HTTP request: {text[:200]}"


def _max_connections(settings: Settings) -> int:
    """max_connections, within what the process's file handle limit (raised to the hard
    limit at start, by run_broker) leaves beside the pool of segment files."""
    limit = open_files_limit()
    if limit == resource.RLIM_INFINITY:
        return settings.max_connections
    segment_files = settings.max_open_files or default_max_open_files(limit)
    allowed = connections_within_file_limit(settings.max_connections, limit, segment_files)
    if allowed < settings.max_connections:
        log.warning(
            "max_connections lowered from %d to %d: the process may open %d files, %d of "
            "them for segment files",
            settings.max_connections,
            allowed,
            limit,
            segment_files,
        )
    return allowed


def run_broker(config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
    config.broker(broker_id)  # fail early, with the config's own message
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s broker-{broker_id} %(levelname)s %(name)s: %(message)s",
    )
    raise_open_files_limit()  # before anything opens a file: the pool is sized from it
    # uvloop: the forwarded produce path costs 13-15% less CPU on it (docs/benchmarks.md,
    # "Profile findings", section 11); api/listener.py keeps it accepting past EMFILE.
    uvloop.run(serve(config, broker_id, data_dir))
