"""Sending a request on to the broker that leads a partition.

Any broker answers any request: produce, fetch and offset look-ups for a partition led
elsewhere go to its leader with `X-Raftka-Forwarded` set, so a request is forwarded once
and never loops. The leader waits briefly for metadata it has not applied yet. A read
answered 503 LEADER_NOT_AVAILABLE is retried briefly here; a write never is: the leader may
have appended it before losing leadership, and a second try would write it twice.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from raftka.metadata.errors import LeaderNotAvailable

FORWARDED_HEADER = "X-Raftka-Forwarded"
FORWARD_RETRY_WINDOW_S = 2.0
FORWARD_RETRY_BACKOFF_S = 0.05


class Forwarder:
    def __init__(self, request_timeout_s: float) -> None:
        self._request_timeout_s = request_timeout_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def send(
        self, method: str, url: str, *, body: bytes | None = None, extra_wait_s: float = 0.0
    ) -> tuple[int, bytes, dict[str, str]]:
        """`extra_wait_s` lengthens the timeout by what the leader may legitimately hold
        the request (a long-poll's max_wait_ms)."""
        timeout = aiohttp.ClientTimeout(total=self._request_timeout_s + extra_wait_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_RETRY_WINDOW_S
        while True:
            try:
                async with self.session.request(
                    method,
                    url,
                    data=body,
                    timeout=timeout,
                    headers={FORWARDED_HEADER: "1", "Content-Type": "application/json"},
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                    headers = {
                        k: v
                        for k, v in resp.headers.items()
                        if k in ("Retry-After", "Content-Type")
                    }
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise LeaderNotAvailable(
                    f"the partition leader at {url} is unreachable: {exc}"
                ) from None
            # Only "that broker does not lead it (yet)" can change within the window, and
            # only a read may safely be sent twice; anything else goes back at once.
            retriable = method == "GET" and _leader_not_available(status, payload)
            if not retriable or loop.time() >= deadline:
                return status, payload, headers
            await asyncio.sleep(FORWARD_RETRY_BACKOFF_S)

    async def proxy(
        self, method: str, url: str, body: bytes | None = None, extra_wait_s: float = 0.0
    ) -> web.Response:
        status, payload, headers = await self.send(
            method, url, body=body, extra_wait_s=extra_wait_s
        )
        headers.setdefault("Content-Type", "application/json")
        return web.Response(status=status, body=payload, headers=headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _leader_not_available(status: int, payload: bytes) -> bool:
    return status == 503 and b'"LEADER_NOT_AVAILABLE"' in payload


def is_forwarded(request: web.Request) -> bool:
    return FORWARDED_HEADER in request.headers
