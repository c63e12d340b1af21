"""This broker's side of its session with the controller: one connection kept open, so
that when this process dies the kernel closes it at once and the controller fences us
within a second; a paused process keeps it open, so only the session timeout fences a
broker that is merely slow. A session that breaks without the controller's clean end
means the controller died: should we become the next one, that is how we know to fence
it quickly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

SESSION_RETRY_S = 0.1
SESSION_PATH = "/internal/brokers/{broker_id}/session"
# The last bytes of a session whose controller stepped down (or stopped cleanly).
SESSION_CLEAN_END = b"end\n"


class ControllerSession:
    def __init__(
        self,
        broker_id: int,
        incarnation_id: str,
        controller_id: Callable[[], int | None],
        broker_url: Callable[[int], str | None],
        on_controller_died: Callable[[int, int], None],
    ) -> None:
        self._broker_id = broker_id
        self._incarnation_id = incarnation_id
        self._controller_id = controller_id
        self._broker_url = broker_url
        self._on_controller_died = on_controller_died

    async def loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                controller = self._controller_id()
                url = None if controller is None else self._broker_url(controller)
                if controller is None or controller == self._broker_id or url is None:
                    await asyncio.sleep(SESSION_RETRY_S)
                    continue
                if not await self._hold(session, controller, url):
                    self._on_controller_died(controller, int(time.monotonic() * 1000))
                await asyncio.sleep(SESSION_RETRY_S)

    async def _hold(self, session: aiohttp.ClientSession, controller: int, url: str) -> bool:
        """Holds one session; False when it was established and then broke without the
        controller's clean end (the controller process died, or its host)."""
        path = SESSION_PATH.format(broker_id=self._broker_id)
        established = False
        try:
            async with session.post(
                url + path, json={"incarnation_id": self._incarnation_id}
            ) as resp:
                if resp.status != 200:
                    return True
                established = True
                tail = b""
                while True:
                    try:
                        chunk = await asyncio.wait_for(resp.content.read(64), SESSION_RETRY_S)
                    except TimeoutError:
                        if self._controller_id() not in (controller, None):
                            return True  # it hangs (paused?) and another took over: move on
                        # No known controller is no reason to drop the session: a voter
                        # that was paused forgets the leader for a moment when it resumes.
                        continue
                    if not chunk:
                        return tail.endswith(SESSION_CLEAN_END)
                    tail = (tail + chunk)[-len(SESSION_CLEAN_END) :]
        except (aiohttp.ClientError, OSError):
            # A refused connection says nothing new; a broken one means it died.
            return not established
