"""A bounded set of writes that finish after their request was answered (acks=0).

Below the limit a write runs in the background; at the limit the caller waits for its own
write instead (push-back), so the backlog never grows past `limit`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)


class BackgroundWrites:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: set[asyncio.Future[Any]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def submit(self, write: Awaitable[Any]) -> None:
        """Returns at once while under the limit (the write goes on), else after `write`."""
        if len(self._running) >= self.limit:
            await write
            return
        running = asyncio.ensure_future(write)
        self._running.add(running)
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Future[Any]) -> None:
        self._running.discard(running)
        if not running.cancelled() and running.exception() is not None:
            log.warning(
                "a write answered before it finished (acks=0) failed: %s", running.exception()
            )
