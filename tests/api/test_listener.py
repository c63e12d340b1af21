"""The brokers' accept loop (api/listener.py) on uvloop, the brokers' event loop: while the
process has no file handle left, connections wait, and are served once handles are free.
(uvloop's own create_server accepts and closes every waiting connection then, and closes
its listening socket for good when it cannot get its spare handle back.)"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
from typing import cast

import pytest
import uvloop

from raftka.api.listener import WARNING_INTERVAL_S, RateLimitedWarning, listen
from tests.waiting import eventually

DEADLINE_S = 20.0
HANDLES_SPARE = 24  # above what is open when the limit is lowered
WAITING_CLIENTS = 3


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def exhaust_then_recover(caplog: pytest.LogCaptureFixture) -> list[bytes]:
    """Connections made while the process has no file handle left wait in the backlog,
    and each gets its answer once handles are free again."""
    loop = asyncio.get_running_loop()
    listener = await listen(Echo, "127.0.0.1", 0, backlog=128)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    clients: list[socket.socket] = []
    try:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + HANDLES_SPARE, hard)
        )
        while True:  # take every handle, then give back one per waiting client
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE, exc
                break
        for _ in range(WAITING_CLIENTS):
            os.close(fillers.pop())
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", listener.port))
            clients.append(client)
        await eventually(lambda: "accept() failed" in caplog.text, "an accept() failure")
        for fd in fillers:
            os.close(fd)
        fillers.clear()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        answers = []
        for client in clients:
            await loop.sock_sendall(client, b"ping")
            answers.append(await asyncio.wait_for(loop.sock_recv(client, 4), DEADLINE_S))
        return answers
    finally:
        for fd in fillers:
            os.close(fd)
        for client in clients:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        listener.close()


def test_the_listener_accepts_again_after_running_out_of_file_handles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="raftka.api.listener")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(exhaust_then_recover(caplog)) == [b"ping"] * WAITING_CLIENTS


def test_a_repeated_warning_is_logged_once_per_interval_with_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    warning = RateLimitedWarning(logging.getLogger("test.rate"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.rate"):
        for _ in range(3):
            warning.warn("accept() failed: %s", "EMFILE")
        now[0] += WARNING_INTERVAL_S
        warning.warn("accept() failed: %s", "EMFILE")
    assert [r.getMessage() for r in caplog.records] == [
        "accept() failed: EMFILE",
        "accept() failed: EMFILE (2 more since the last report)",
    ]
