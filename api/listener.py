"""A listening socket whose accept loop outlives running out of file handles.

Brokers run on uvloop (docs/benchmarks.md, "Profile findings", section 11). When accept()
fails with EMFILE, uvloop's `create_server` (libuv) accepts and closes every connection
waiting in the backlog, and when it cannot get its spare handle back it closes the
listening socket for good. Here the broker accepts itself: a failure for want of
resources is logged (rate-limited) and accept() is tried again after a pause, as asyncio's
own loop does, so waiting connections wait; every accepted socket goes to the loop with
its protocol and TLS context, as `create_server` would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# asyncio's own accept loop pauses this long after running out of resources.
ACCEPT_RETRY_S = 1.0
WARNING_INTERVAL_S = 10.0


class RateLimitedWarning:
    """Logs a warning at most once per `interval_s`, counting the ones it held back."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = WARNING_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last_at = float("-inf")
        self._held_back = 0

    def warn(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._last_at < self._interval_s:
            self._held_back += 1
            return
        suffix = f" ({self._held_back} more since the last report)" if self._held_back else ""
        self._logger.warning(message + suffix, *args)
        self._last_at = now
        self._held_back = 0


class Listener:
    """Accepts connections on one socket until `close`; `port` is the one it is bound to."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
    ) -> None:
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._tls = tls
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accept_failed = RateLimitedWarning(log)
        self._accepting = asyncio.create_task(self._accept_forever())

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def close(self) -> None:
        """Stops accepting; the connections already made stay open. The socket is closed
        once the accept loop has let go of it (a pending accept watches its descriptor)."""
        self._accepting.add_done_callback(lambda _: self._sock.close())
        self._accepting.cancel()
        for handshake in self._handshakes:
            handshake.cancel()

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(self._sock)
            except ConnectionAbortedError:
                continue  # the client gave up before it was accepted
            except OSError as exc:
                # Out of file handles or memory; or anything else, which asyncio's own
                # loop logs and survives too. Either way the next accept() may work.
                self._accept_failed.warn("accept() failed: %s; trying again shortly", exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            handshake = asyncio.create_task(self._serve(connection))
            self._handshakes.add(handshake)
            handshake.add_done_callback(self._handshakes.discard)

    async def _serve(self, connection: socket.socket) -> None:
        """Hands the socket to the loop, which owns it from then on, also when this fails
        (a TLS handshake may take a while: a task)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._protocol_factory, connection, ssl=self._tls)
        except OSError as exc:  # a TLS handshake that failed or timed out, a reset
            log.debug("a connection failed before it was served: %r", exc)


async def listen(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    *,
    backlog: int,
    tls: ssl.SSLContext | None = None,
) -> Listener:
    """Binds the first address `host` resolves to, on `port` (SO_REUSEADDR, as
    create_server does), and starts accepting."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"{host}:{port} resolves to no address")
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address, family=family, backlog=backlog)
    sock.setblocking(False)
    return Listener(sock, protocol_factory, tls)
