"""bench/answer_reader.py against a real socket server that answers in pieces."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from raftka.bench import answer_reader
from raftka.bench.answer_reader import INITIAL_BUFFER_BYTES
from raftka.bench.errors import BenchError
from tests.integration.tls_certs import make_certificates

Answer = Callable[[bytes], list[bytes]]  # a request -> the pieces of its answer


def answer_of(status: int, body: bytes, pieces: int = 3) -> list[bytes]:
    whole = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body
    step = max(1, len(whole) // pieces)
    return [whole[i : i + step] for i in range(0, len(whole), step)]


async def serve(
    answer: Answer, close_after: bool = False, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.readuntil(b"\r\n\r\n"):
            for piece in answer(request):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)
            if close_after:
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """Answers each request with a body of the size its path names: GET /N."""

    def answer(request: bytes) -> list[bytes]:
        size = int(request.split(b" ")[1][1:])
        return answer_of(200, bytes(range(256)) * (size // 256) + b"x" * (size % 256), 7)

    async for port in serve(answer):
        yield port


async def test_answers_of_any_size_are_read_whole_one_after_another(echo_port: int) -> None:
    connection = await answer_reader.connect("127.0.0.1", echo_port, None)
    try:
        for size in (0, 10, 70_000, 3 * INITIAL_BUFFER_BYTES + 5, 1_000):
            status, body = await connection.exchange(b"GET /%d HTTP/1.1\r\n\r\n" % size)
            assert status == 200
            assert bytes(body) == bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    finally:
        connection.close()


async def test_a_body_handed_out_stays_readable_while_the_buffer_grows(echo_port: int) -> None:
    connection = await answer_reader.connect("127.0.0.1", echo_port, None)
    try:
        _, small = await connection.exchange(b"GET /300 HTTP/1.1\r\n\r\n")
        kept = bytes(small)
        _, big = await connection.exchange(b"GET /%d HTTP/1.1\r\n\r\n" % (2 * INITIAL_BUFFER_BYTES))
        assert len(big) == 2 * INITIAL_BUFFER_BYTES and len(kept) == 300
    finally:
        connection.close()


def _cut(request: bytes) -> list[bytes]:
    """Two of the three pieces of an answer (the server then closes)."""
    return answer_of(200, b"y" * 1_000)[:2]


def _chunked(request: bytes) -> list[bytes]:
    return [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]


@pytest.mark.parametrize(
    ("answer", "close_after", "error"),
    [
        (_cut, True, "broke in the middle"),  # a connection closed mid-answer
        (_chunked, False, "Content-Length"),  # an answer without a Content-Length
    ],
)
async def test_an_answer_that_cannot_be_read_whole_is_an_error(
    answer: Answer, close_after: bool, error: str
) -> None:
    async for port in serve(answer, close_after=close_after):
        connection = await answer_reader.connect("127.0.0.1", port, None)
        try:
            with pytest.raises(BenchError, match=error):
                await asyncio.wait_for(connection.exchange(b"GET / HTTP/1.1\r\n\r\n"), 30)
        finally:
            connection.close()


async def test_answers_are_read_over_tls_too(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(certificates.chain, certificates.key)
    client_side = ssl.create_default_context(cafile=str(certificates.ca))

    def answer(request: bytes) -> list[bytes]:
        return answer_of(200, b"z" * 300_000, 5)

    async for port in serve(answer, tls=server_side):
        connection = await answer_reader.connect("127.0.0.1", port, client_side)
        try:
            for _ in range(2):
                status, body = await connection.exchange(b"GET / HTTP/1.1\r\n\r\n")
                assert (status, bytes(body)) == (200, b"z" * 300_000)
        finally:
            connection.close()
