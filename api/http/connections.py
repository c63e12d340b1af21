"""Bounds on the broker's HTTP connections: how many may be open at once, and how long
one may sit idle or trickle a request in.

aiohttp's server closes idle keep-alive connections but has no header or body read
timeout and no cap on connections, so ~20,000 idle sockets exhausted a broker's file
handles: it could no longer accept even `/healthz`. `ConnectionGuard` sits between the
listening socket and aiohttp: its protocol factory wraps each aiohttp handler in a
`GuardedConnection`, which notes the phase the connection is in and since when, and past
`max_connections` it hands out a `RefusedConnection` instead, which answers a short 503
and closes. `guard_middleware` tells a connection when aiohttp has parsed a request's
headers and when the handler is done. One reaper task closes the connections that stayed
too long in a timed phase: marking a phase costs a request two attribute writes, not a
timer (three timers cost 17 µs a request, the marks 0.8 µs, measured with timeit). A timeout
fires up to one reap interval late. This module never looks inside a request.

A connection's phases (Go's net/http has the same three timeouts):
- idle: no request in progress, nothing left to send; ends at a request's first byte;
- header: the first byte of a request has come, its headers are not complete yet;
- body: the handler runs and the request body has not fully arrived yet;
then active, without a time limit (a long-poll fetch, a broker's session), until the
handler returns and the connection is idle again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web

from raftka.api.listener import RateLimitedWarning

log = logging.getLogger(__name__)

# The reaper's pace bounds how late a timeout fires, and its cost (a look at every
# connection) per interval.
MIN_REAP_INTERVAL_S = 0.05
MAX_REAP_INTERVAL_S = 1.0
# A refused connection gets its 503, then up to this long for the client to read it and
# close (closing at once with the request unread would reset the connection, and the
# client would never see the 503).
REFUSED_LINGER_S = 0.5
# At most this many refused connections linger at once; past it they are closed right
# after the 503 is written.
# The file handle budget is max_connections + this + ACCEPT_BACKLOG.
MAX_LINGERING_REFUSALS = 64
# The listening socket's backlog. Sockets accepted and not yet handed to the guard (a few
# at most: api/listener.py hands each on at the next loop pass) count in the budget too.
ACCEPT_BACKLOG = 128
# File handles kept for everything that is not a client connection (logs, Raft, the
# broker's own client connections) when max_connections is clamped to the process's
# limit (RLIMIT_NOFILE).
FILE_HANDLES_RESERVED = 512
REFUSAL_BODY = (
    b'{"error": {"code": "TOO_MANY_CONNECTIONS", '
    b'"message": "the broker has reached max_connections; retry shortly"}}'
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(REFUSAL_BODY)).encode() + b"\r\n\r\n" + REFUSAL_BODY
)


class Phase(enum.Enum):
    IDLE = "idle"
    HEADER = "header"
    BODY = "body"
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    idle_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float

    def timeout_s(self, phase: Phase) -> float | None:
        """How long a connection may stay in `phase` (None: as long as it likes)."""
        if phase is Phase.IDLE:
            return self.idle_timeout_s
        if phase is Phase.HEADER:
            return self.header_timeout_s
        if phase is Phase.BODY:
            return self.body_timeout_s
        return None

    @property
    def reap_interval_s(self) -> float:
        """A quarter of the shortest timeout, within bounds: late by at most that."""
        shortest = min(self.idle_timeout_s, self.header_timeout_s, self.body_timeout_s)
        return min(MAX_REAP_INTERVAL_S, max(MIN_REAP_INTERVAL_S, shortest / 4))


@dataclass(slots=True)
class ConnectionStats:
    """What /metrics reports; plain counters, bumped on the loop."""

    open: int = 0
    refused: int = 0
    timed_out: dict[Phase, int] = field(
        default_factory=lambda: {Phase.IDLE: 0, Phase.HEADER: 0, Phase.BODY: 0}
    )


def connections_within_file_limit(
    max_connections: int, open_files_limit: int, segment_files: int
) -> int:
    """max_connections, lowered so that connections can never take the handles the
    rest of the broker needs: the pool of segment files (`segment_files`), and for Raft,
    index files, checkpoints, lingering refusals and the accept backlog the reserve, or a
    quarter of the limit where the limit is low (at least one connection is allowed)."""
    others = min(
        FILE_HANDLES_RESERVED + MAX_LINGERING_REFUSALS + ACCEPT_BACKLOG, open_files_limit // 4
    )
    budget = open_files_limit - segment_files - others
    return max(1, min(max_connections, budget))


class ConnectionGuard:
    """Counts and times every client connection; one per broker."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.stats = ConnectionStats()
        self._lingering = 0
        self._by_transport: dict[asyncio.BaseTransport, GuardedConnection] = {}
        self._refusal_warning = RateLimitedWarning(log)
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap_loop())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper

    async def _reap_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.limits.reap_interval_s)
            now = loop.time()
            for connection in list(self._by_transport.values()):
                connection.reap(now)

    def protocol_factory(
        self, make_handler: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """What the listener (api/listener.py) calls for each accepted socket."""

        def make() -> asyncio.Protocol:
            if self.stats.open >= self.limits.max_connections:
                self.stats.refused += 1
                self._refusal_warning.warn(
                    "refusing connections: max_connections (%d) are open",
                    self.limits.max_connections,
                )
                return RefusedConnection(self)
            # Counted here, not in connection_made: many accepts can run before the
            # first of their connections is made.
            self.stats.open += 1
            return GuardedConnection(self, make_handler())

        return make

    def connection_of(self, request: web.BaseRequest) -> GuardedConnection | None:
        transport = request.transport
        return None if transport is None else self._by_transport.get(transport)

    # -- called by the connections -----------------------------------------------

    def _made(self, connection: GuardedConnection, transport: asyncio.BaseTransport) -> None:
        self._by_transport[transport] = connection

    def _lost(self, transport: asyncio.BaseTransport | None) -> None:
        self.stats.open -= 1
        if transport is not None:
            self._by_transport.pop(transport, None)

    def _timed_out(self, phase: Phase) -> None:
        self.stats.timed_out[phase] += 1

    def _may_linger(self) -> bool:
        if self._lingering >= MAX_LINGERING_REFUSALS:
            return False
        self._lingering += 1
        return True

    def _lingered(self) -> None:
        self._lingering -= 1


class GuardedConnection(asyncio.Protocol):
    """aiohttp's handler for one connection, with a timer for the phase it is in."""

    def __init__(self, guard: ConnectionGuard, handler: asyncio.Protocol) -> None:
        self._guard = guard
        self._handler = handler
        self._transport: asyncio.Transport | None = None
        self._phase = Phase.IDLE
        self._since = 0.0  # loop time the phase began
        self._request: web.BaseRequest | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    # -- asyncio.Protocol: everything goes on to aiohttp's handler -----------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._guard._made(self, transport)
        self._handler.connection_made(transport)
        self._enter(Phase.IDLE)

    def data_received(self, data: bytes) -> None:
        if self._phase is Phase.IDLE:
            self._enter(Phase.HEADER)
        self._handler.data_received(data)
        if self._phase is Phase.BODY and self._body_complete():
            self._enter(Phase.ACTIVE)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._lost(self._transport)
        self._request = None
        self._handler.connection_lost(exc)

    # -- told by guard_middleware ----------------------------------------------------

    def request_started(self, request: web.BaseRequest) -> None:
        self._request = request
        self._enter(Phase.ACTIVE if self._body_complete() else Phase.BODY)

    def request_finished(self) -> None:
        self._request = None
        if self._transport is not None and not self._transport.is_closing():
            self._enter(Phase.IDLE)

    # -- timing --------------------------------------------------------------------

    def _body_complete(self) -> bool:
        return self._request is None or self._request.content.is_eof()

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        self._since = asyncio.get_running_loop().time()

    def reap(self, now: float) -> None:
        """Called by the reaper: closes the connection if its phase has run out."""
        timeout_s = self._guard.limits.timeout_s(self._phase)
        transport = self._transport
        if timeout_s is None or now - self._since < timeout_s:
            return
        if transport is None or transport.is_closing():
            return
        if self._phase is Phase.IDLE and transport.get_write_buffer_size() > 0:
            self._since = now  # an answer is still on its way to a slow reader
            return
        self._guard._timed_out(self._phase)
        transport.close()


class RefusedConnection(asyncio.Protocol):
    """Past max_connections: a 503 and a closed connection, never a traceback."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def connection_made(self, base_transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base_transport)
        try:
            transport.write(REFUSAL)
            if not self._guard._may_linger():
                transport.close()  # the 503 still goes out, but a request sent may reset it
                return
            self._lingering = True
            transport.write_eof()
        except OSError:  # the client left before we could answer
            transport.abort()
            return
        self._timer = asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: it is refused whatever it is

    def eof_received(self) -> bool:
        return False  # the client has read the 503 and closed: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._lingering:
            self._lingering = False
            self._guard._lingered()


def guard_middleware(guard: ConnectionGuard) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The outermost middleware: marks a request's start and end on its connection."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        connection = guard.connection_of(request)
        if connection is None:  # a test client's connection, not one of ours
            return await handler(request)
        connection.request_started(request)
        try:
            return await handler(request)
        except ConnectionResetError:
            # The connection is gone (the client left, or it timed out sending its
            # body): nobody to answer, and nothing worth a traceback.
            return web.Response(status=499)
        finally:
            connection.request_finished()

    return middleware
