"""Sending a request on to the broker that leads a partition.

Any broker answers any request: produce, fetch and offset look-ups for a partition led
elsewhere go to its leader with `X-Raftka-Forwarded` set, so a request is forwarded once
and never loops, and with the proof that a broker sent it (api/broker_auth.py): only a
proven forward may carry a body past max_request_bytes (re-encoding grows it a little). The leader waits briefly for metadata it has not applied yet. A read
answered 503 LEADER_NOT_AVAILABLE is retried briefly here; a write never is: the leader may
have appended it before losing leadership, and a second try would write it twice.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import unquote, urlsplit

import orjson
from aiohttp import web

from raftka.api.broker_auth import BrokerAuth
from raftka.api.keepalive import KeepAliveClient
from raftka.metadata.errors import LeaderNotAvailable, RaftkaError, error_for_code

FORWARDED_HEADER = "X-Raftka-Forwarded"
FORWARD_RETRY_WINDOW_S = 2.0
FORWARD_RETRY_BACKOFF_S = 0.05
# What of the leader's answer headers goes back to the client.
PASSED_HEADERS = {"retry-after": "Retry-After", "content-type": "Content-Type"}


class Forwarder:
    def __init__(
        self,
        request_timeout_s: float,
        auth: BrokerAuth | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self._request_timeout_s = request_timeout_s
        self._auth = auth or BrokerAuth(None)
        self._client = KeepAliveClient(client_ssl)

    async def send(
        self, method: str, url: str, *, body: bytes | None = None, extra_wait_s: float = 0.0
    ) -> tuple[int, bytes, dict[str, str]]:
        """`extra_wait_s` lengthens the timeout by what the leader may legitimately hold
        the request (a long-poll's max_wait_ms)."""
        timeout_s = self._request_timeout_s + extra_wait_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_RETRY_WINDOW_S
        path = unquote(urlsplit(url).path)  # the receiver checks the proof on its decoded path
        while True:
            headers = {FORWARDED_HEADER: "1", "Content-Type": "application/json"}
            headers.update(self._auth.headers(method, path))
            try:
                answer = await self._client.request(
                    method, url, headers=headers, body=body or b"", timeout_s=timeout_s
                )
            except (ConnectionError, TimeoutError) as exc:
                raise LeaderNotAvailable(
                    f"the partition leader at {url} is unreachable: {exc}"
                ) from None
            status, payload = answer.status, answer.body
            # Only "that broker does not lead it (yet)" can change within the window, and
            # only a read may safely be sent twice; anything else goes back at once.
            retriable = method == "GET" and _leader_not_available(status, payload)
            if not retriable or loop.time() >= deadline:
                passed = {
                    PASSED_HEADERS[name]: value
                    for name, value in answer.headers.items()
                    if name in PASSED_HEADERS
                }
                return status, payload, passed
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
        await self._client.close()


def peer_error(status: int, payload: bytes, peer: str) -> RaftkaError:
    """The contract error in another broker's error answer; anything else is an
    INTERNAL_ERROR naming the peer."""
    try:
        error = orjson.loads(payload)["error"]
        return error_for_code(str(error["code"]), str(error["message"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return error_for_code("INTERNAL_ERROR", f"{peer} answered {status} without an error")


def _leader_not_available(status: int, payload: bytes) -> bool:
    return status == 503 and b'"LEADER_NOT_AVAILABLE"' in payload
