"""HTTP/1.1 keep-alive connections from this broker to the others, written and read by hand.

Brokers talk to each other on hot paths (a follower's replica fetch, a produce forwarded to
its leader), always to the same few aiohttp servers. An answer's body is sized by its
Content-Length, by chunks, or (204, 304) absent.
aiohttp's client (request and response objects, URL parsing, tracing hooks, a timer per
request) cost more CPU per round trip than the work it carries (docs/benchmarks.md,
"Profile findings (issue 15)", section 8); this client writes a request in one call and reads the
answer with two. Idle connections are kept per origin and reused; one that failed, timed
out, was cancelled mid-answer, or that the peer asked to close is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

# An answer's head is a few lines.
MAX_HEAD_BYTES = 64 * 1024
# Answers that never have a body (RFC 9112, 6.3), whatever their headers say.
NO_BODY_STATUSES = frozenset({204, 304})
# Idle connections kept per origin, and for how long: well below the brokers' own idle
# timeout (connections_max_idle_ms), so a kept connection is rarely one the peer has just
# closed; when it is, the peer never read the request (PeerClosed), and it goes again on
# a new connection.
MAX_IDLE_PER_ORIGIN = 32
MAX_IDLE_S = 1.0
# Connections open to one peer at once (aiohttp's connector allowed 100 in all): more
# requests wait for one, so a burst of forwards cannot take this broker's file handles,
# nor the peer's max_connections.
MAX_CONNECTIONS_PER_ORIGIN = 100


class PeerClosed(ConnectionError):
    """The peer closed a reused connection before answering: it never read the request."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class KeepAliveClient:
    def __init__(self, client_ssl: ssl.SSLContext | None = None) -> None:
        self._ssl = client_ssl
        self._idle: dict[tuple[str, str], deque[_Connection]] = {}
        self._slots: dict[tuple[str, str], asyncio.Semaphore] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes = b"",
        timeout_s: float,
    ) -> Answer:
        """Raises ConnectionError (the peer cannot be reached, or broke the connection) or
        TimeoutError."""
        split = urlsplit(url)
        origin = (split.scheme, split.netloc)
        target = split.path + (f"?{split.query}" if split.query else "")
        head = [f"{method} {target} HTTP/1.1", f"Host: {split.netloc}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(MAX_CONNECTIONS_PER_ORIGIN)
        async with asyncio.timeout(timeout_s), slots:
            while True:
                connection = self._take_idle(origin)
                reused = connection is not None
                if connection is None:
                    connection = await self._connect(split.scheme, split.hostname, split.port)
                try:
                    answer, keep = await _exchange(connection, message)
                except PeerClosed:
                    connection.close()
                    if reused:
                        continue  # a stale idle connection: the request was never read
                    raise
                except BaseException as exc:
                    connection.close()  # mid-answer it is unusable (also when cancelled)
                    if isinstance(exc, (OSError, asyncio.IncompleteReadError)):
                        raise ConnectionError(f"{url}: {exc!r}") from None
                    if isinstance(exc, asyncio.LimitOverrunError):
                        raise ConnectionError(f"{url}: the answer's head is too long") from None
                    raise
                if keep:
                    self._give_back(origin, connection)
                else:
                    connection.close()
                return answer

    def _take_idle(self, origin: tuple[str, str]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if (
                now - connection.idle_since < MAX_IDLE_S
                and not connection.writer.is_closing()
                and not connection.reader.at_eof()
            ):
                return connection
            connection.close()
        return None

    def _give_back(self, origin: tuple[str, str], connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, scheme: str, host: str | None, port: int | None) -> _Connection:
        if host is None or port is None:
            raise ConnectionError(f"{scheme}://{host}:{port} names no host and port")
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl if self._ssl is not None else ssl.create_default_context()
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, limit=MAX_HEAD_BYTES
            )
        except OSError as exc:
            raise ConnectionError(f"{scheme}://{host}:{port}: {exc!r}") from None
        return _Connection(reader, writer)

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await connection.writer.wait_closed()


async def _exchange(connection: _Connection, message: bytes) -> tuple[Answer, bool]:
    """Writes one request, reads its answer; whether the connection may be reused."""
    try:
        connection.writer.write(message)
        await connection.writer.drain()
        raw_head = await connection.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise PeerClosed("the peer closed the connection before answering") from None
        raise
    except (ConnectionResetError, BrokenPipeError):
        # Not one byte of an answer: the peer had closed the connection (a reset is what
        # a closed socket answers to data).
        raise PeerClosed("the peer closed the connection before answering") from None
    status, headers = _parse_head(raw_head)
    keep = headers.get("connection", "").lower() != "close"
    length = headers.get("content-length", "")
    if status in NO_BODY_STATUSES:
        body = b""
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(connection.reader)
    elif length.isdigit():
        body = await connection.reader.readexactly(int(length))
    else:  # delimited by the end of the connection
        body, keep = await connection.reader.read(), False
    return Answer(status, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_field = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ConnectionError(f"a bad chunk size {size_field[:20]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer lines, up to the blank one
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the CRLF after the chunk


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers
