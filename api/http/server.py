"""Runs one broker process: HTTP server first, then the broker; clean stop on SIGTERM/SIGINT.

Stopping order matters: stop accepting requests, stop the broker's loops, flush and
close every log, then leave the metadata quorum.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from raftka.api.broker.broker import Broker
from raftka.api.broker.open_files import (
    default_max_open_files,
    open_files_limit,
    raise_open_files_limit,
)
from raftka.api.http.app import create_app
from raftka.api.http.connections import (
    ACCEPT_BACKLOG,
    RateLimitedWarning,
    connections_within_file_limit,
)
from raftka.api.http.context import CONNECTIONS_KEY
from raftka.api.settings import ClusterConfig, Settings

log = logging.getLogger(__name__)

# The message asyncio's accept loop reports EMFILE/ENFILE/ENOBUFS/ENOMEM with.
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"


async def serve(config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
    broker = Broker(config, broker_id, data_dir)
    loop = asyncio.get_running_loop()
    _quiet_accept_failures(loop)
    app = create_app(broker, max_connections=_max_connections(config.settings))
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
    listener = await loop.create_server(
        app[CONNECTIONS_KEY].protocol_factory(runner.server),
        broker.address.http_host,
        broker.address.http_port,
        reuse_address=True,
        backlog=ACCEPT_BACKLOG,
    )
    log.info("broker %d listening on %s", broker_id, broker.address.url)
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
            await stopped
        else:
            starting.cancel()
    finally:
        log.info("broker %d stopping", broker_id)
        listener.close()
        await broker.stop()
        await runner.cleanup()  # closes the open connections
        log.info("broker %d stopped", broker_id)


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


def _quiet_accept_failures(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs a traceback for every accept() that fails for want of file handles
    (and retries a second later): log one line per interval instead."""
    warning = RateLimitedWarning()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_OUT_OF_RESOURCES:
            warning.warn("accept() failed: %s", context.get("exception"))
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def run_broker(config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
    config.broker(broker_id)  # fail early, with the config's own message
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s broker-{broker_id} %(levelname)s %(name)s: %(message)s",
    )
    raise_open_files_limit()  # before anything opens a file: the pool is sized from it
    asyncio.run(serve(config, broker_id, data_dir))
