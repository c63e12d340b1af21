"""Runs one broker process: HTTP server first, then the broker; clean stop on SIGTERM/SIGINT.

Stopping order matters: stop accepting requests, stop the broker's loops, flush and
close every log, then leave the metadata quorum.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from raftka.api.app import create_app
from raftka.api.broker import Broker
from raftka.api.open_files import raise_open_files_limit
from raftka.api.settings import ClusterConfig

log = logging.getLogger(__name__)


async def serve(config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
    broker = Broker(config, broker_id, data_dir)
    app = create_app(broker)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        broker.address.http_host,
        broker.address.http_port,
        reuse_address=True,
        backlog=1024,
    )
    await site.start()
    log.info("broker %d listening on %s", broker_id, broker.address.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
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
        await site.stop()
        await broker.stop()
        await runner.cleanup()
        log.info("broker %d stopped", broker_id)


def run_broker(config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
    config.broker(broker_id)  # fail early, with the config's own message
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s broker-{broker_id} %(levelname)s %(name)s: %(message)s",
    )
    raise_open_files_limit()  # before anything opens a file: the pool is sized from it
    asyncio.run(serve(config, broker_id, data_dir))
