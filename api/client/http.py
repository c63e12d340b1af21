"""The client's asyncio HTTP core: one aiohttp session, the contract's errors, retries.

`Transport` sends one request to one URL (token, TLS) and turns any error answer into the
contract's `RaftkaError`, a missing answer into `ConnectionFailed`. `Cluster` sends
requests any broker can answer: it starts with the bootstrap URLs, learns the others
from `GET /v1/cluster`, moves on to the next broker when one cannot be reached, and
retries retriable errors with `Backoff` until a deadline. Everything else in the client
(producer, consumer, admin, the CLI) is built on these two; nothing here knows a
broker's internals, only the HTTP contract.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from raftka.client.errors import ClientError, ConnectionFailed, RaftkaError, error_from_answer

DEFAULT_BOOTSTRAP = "http://127.0.0.1:9091"
# A request without an answer after this long counts as a lost connection. Longer than a
# broker's request_timeout_ms (30 s by default), so an acks=all write gets its 504 first.
REQUEST_TIMEOUT_S = 45.0
CONNECT_TIMEOUT_S = 5.0
# How long calls that any broker can answer retry retriable errors by default.
DEFAULT_RETRY_FOR_S = 30.0
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 1.0
BACKOFF_JITTER = 0.2

Params = dict[str, str | int]


def bootstrap_urls(bootstrap: str | Sequence[str]) -> list[str]:
    """`"http://a:1,http://b:2"` or a list of URLs, without trailing slashes."""
    parts = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    urls = [u.strip().rstrip("/") for u in parts if u.strip()]
    if not urls:
        raise ValueError("bootstrap needs at least one broker URL")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a bootstrap URL starts with http:// or https://, got {url!r}")
    return urls


class Backoff:
    """Exponential backoff with jitter: 50 ms doubling up to 1 s (a broker's Retry-After is
    1 s, so a client never waits longer than it asks)."""

    def __init__(self) -> None:
        self._next_s = BACKOFF_INITIAL_S

    async def sleep(self, remaining_s: float | None = None) -> None:
        delay = self._next_s * random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)
        self._next_s = min(self._next_s * 2, BACKOFF_MAX_S)
        if remaining_s is not None:
            delay = max(0.0, min(delay, remaining_s))
        await asyncio.sleep(delay)


class Transport:
    """One aiohttp session (made on first use, inside the running loop) and the error
    mapping. One request per call: no retries here."""

    def __init__(self, *, token: str | None = None, cacert: str | None = None) -> None:
        self._headers = {"Content-Type": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._cacert = cacert
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            # A request still running when its owner closed must not open a new session
            # that nobody would ever close.
            raise ClientError("the client is closed")
        if self._session is None or self._session.closed:
            ssl_context = ssl.create_default_context(cafile=self._cacert) if self._cacert else None
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(ssl=ssl_context if ssl_context else True),
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S),
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: Params | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        """The decoded JSON answer (None for 204); raises the contract's error."""
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        try:
            async with self._get_session().request(
                method,
                url,
                data=data,
                params=params,
                timeout=aiohttp.ClientTimeout(total=timeout_s, connect=CONNECT_TIMEOUT_S),
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConnectionFailed(
                f"no answer from {url}: {str(exc) or type(exc).__name__}"
            ) from None
        if status == 204:
            return None
        try:
            doc = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            raise ClientError(f"{url} answered {status} with something that is not JSON") from None
        if status < 400:
            return doc
        raise error_from_answer(status, doc, url)


class Cluster:
    """Requests any broker can answer, sent to one broker after the other until one does."""

    def __init__(self, bootstrap: str | Sequence[str], transport: Transport) -> None:
        self.transport = transport
        self._urls = bootstrap_urls(bootstrap)
        self._current = 0

    @property
    def url(self) -> str:
        """The broker requests go to now."""
        return self._urls[self._current]

    def learn(self, urls: Sequence[str]) -> None:
        """Brokers learned from `GET /v1/cluster`: tried after the bootstrap ones."""
        for url in urls:
            url = url.rstrip("/")
            if url not in self._urls:
                self._urls.append(url)

    def rotate(self) -> None:
        self._current = (self._current + 1) % len(self._urls)

    def prefer(self, url: str) -> None:
        """Send to `url` from now on (until it fails): e.g. a group's coordinator, which
        saves every request a forward through another broker."""
        url = url.rstrip("/")
        if url not in self._urls:
            self._urls.append(url)
        self._current = self._urls.index(url)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Params | None = None,
        retry_for_s: float = DEFAULT_RETRY_FOR_S,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        """Retries retriable errors, moving to the next broker after a connection failure,
        until `retry_for_s` has passed; then raises the last error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for_s
        backoff = Backoff()
        while True:
            try:
                return await self.transport.request(
                    method, self.url + path, body=body, params=params, timeout_s=timeout_s
                )
            except RaftkaError as exc:
                if isinstance(exc, ConnectionFailed):
                    self.rotate()
                remaining = deadline - loop.time()
                if not exc.retriable or remaining <= 0:
                    raise
                await backoff.sleep(remaining)
