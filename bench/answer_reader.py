"""A keep-alive HTTP/1.1 connection that reads each answer straight into one buffer: every
connection of the load client (bench/load.py), produce and consume.

The consume pass reads answers of 1 MiB one after the other on one connection, and its
figure is how fast the broker serves them: what this process spends per answer delays
the next request. A StreamReader copies every answer twice (each chunk the socket gives
into its buffer, then the answer out of it); here the socket writes into the buffer
(`asyncio.BufferedProtocol`) and the answer is read where it lies (docs/benchmarks.md,
"Profile findings", section 9). Answers must carry a Content-Length, as the broker's do.
"""

from __future__ import annotations

import asyncio
import ssl

from raftka.bench.errors import BenchError

INITIAL_BUFFER_BYTES = 2 * 1024 * 1024
MIN_FREE_BYTES = 256 * 1024  # room offered to each read of the socket
MAX_HEAD_BYTES = 64 * 1024


def status_and_length(head: bytes) -> tuple[int, int]:
    """The status and Content-Length of an HTTP/1.1 response's head."""
    marker = head.lower().find(b"content-length:")
    if marker < 0:
        raise BenchError(f"a response without Content-Length: {head[:200]!r}")
    line_end = head.find(b"\r\n", marker)
    length = head[marker + len(b"content-length:") : line_end if line_end >= 0 else None]
    return int(head[9:12]), int(length)


class AnswerReader(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self._buffer = bytearray(INITIAL_BUFFER_BYTES)
        self._filled = 0
        self._end: int | None = None  # where the answer being read ends, once its head is in
        self._head_bytes = 0
        self._status = 0
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._buffer) - self._filled < MIN_FREE_BYTES:
            # A new buffer, not a resized one: a body handed out may still be viewed.
            grown = bytearray(2 * len(self._buffer) + MIN_FREE_BYTES)
            grown[: self._filled] = self._buffer[: self._filled]
            self._buffer = grown
        return memoryview(self._buffer)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._end is None:
            self._read_head()
        if self._end is not None and self._filled >= self._end:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionError("the server closed the connection")
        self._wake()

    def _read_head(self) -> None:
        view = bytes(self._buffer[: min(self._filled, MAX_HEAD_BYTES)])
        head_end = view.find(b"\r\n\r\n")
        if head_end < 0:
            if self._filled >= MAX_HEAD_BYTES:
                self._lost = BenchError("an answer's head is longer than 64 KiB")
                self._wake()
            return
        try:
            self._status, length = status_and_length(view[:head_end])
        except BenchError as exc:
            self._lost = exc
            self._wake()
            return
        self._head_bytes = head_end + 4
        self._end = self._head_bytes + length

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def exchange(self, request: bytes) -> tuple[int, memoryview]:
        """Sends one request; its answer's status and body. The body is a view of the buffer,
        valid until the next exchange."""
        assert self.transport is not None
        if self._end is not None:  # the previous answer: drop it (one request in flight)
            self._filled, self._end = 0, None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        if not (self._end is not None and self._filled >= self._end):
            await self._waiter
        if self._lost is not None and (self._end is None or self._filled < self._end):
            if isinstance(self._lost, BenchError):
                raise self._lost
            raise BenchError(f"the connection broke in the middle of an answer: {self._lost!r}")
        assert self._end is not None
        if self._filled > self._end:
            raise BenchError("the server sent more than one answer to one request")
        return self._status, memoryview(self._buffer)[self._head_bytes : self._end]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int, tls: ssl.SSLContext | None) -> AnswerReader:
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(AnswerReader, host, port, ssl=tls)
    return reader
