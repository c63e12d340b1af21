"""The Kafka listener: one asyncio server per broker on its `kafka` address.

Each connection reads size-prefixed request frames and answers them in order, one at a
time (as a Kafka broker does per connection), so a long-polling Fetch holds back only
its own connection's next request. The handlers call the broker as the HTTP routes do.
Limits as over HTTP: at most max_connections open connections (of this listener), a
frame of at most max_request_bytes, closed after connections_max_idle_ms without a
request or request_body_timeout_ms to receive one.

With `[[users]]` configured a connection authenticates first with SASL/PLAIN (username:
a user's name, password: its token); until then it is answered ApiVersions, SaslHandshake
and SaslAuthenticate only, and anything else closes it, as Kafka does. A failed
authentication is answered SASL_AUTHENTICATION_FAILED and the connection closed. Every
request then runs with the user's ACLs (api/kafka/access.py). Served over TLS (the
HTTPS certificates, mutual with tls_client_ca) when the broker has tls_cert/tls_key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kafka.protocol.sasl import SaslAuthenticateResponse, SaslHandshakeResponse

from raftka.api.http.auth import Authenticator
from raftka.api.http.connections import ACCEPT_BACKLOG
from raftka.api.kafka import errors, protocol
from raftka.api.kafka.access import OPEN, Access
from raftka.api.kafka.admin import (
    handle_create_topics,
    handle_delete_topics,
    handle_init_producer_id,
)
from raftka.api.kafka.fetch import handle_fetch, handle_list_offsets
from raftka.api.kafka.groups import KafkaGroupCoordinator
from raftka.api.kafka.metadata import handle_metadata
from raftka.api.kafka.produce import handle_produce, refuse_old_produce
from raftka.api.kafka.sasl import MECHANISMS, PLAIN, SaslError, parse_plain
from raftka.api.listener import Listener, listen
from raftka.metadata.errors import Unauthenticated

if TYPE_CHECKING:
    from prometheus_client import Counter

    from raftka.api.broker.broker import Broker
    from raftka.api.broker.coordinator import GroupCoordinator

log = logging.getLogger(__name__)

Handler = Callable[["Broker", Any, int, Access], Any]
# Answered before a connection has authenticated; anything else closes it.
BEFORE_AUTHENTICATION = frozenset(
    {protocol.API_VERSIONS_KEY, protocol.SASL_HANDSHAKE_KEY, protocol.SASL_AUTHENTICATE_KEY}
)


def _api_versions(broker: Broker, request: Any, version: int, access: Access) -> Any:
    return protocol.api_versions_response()


def _sasl_handshake_again(broker: Broker, request: Any, version: int, access: Access) -> Any:
    """A handshake once authenticated, or on a listener without users."""
    return SaslHandshakeResponse(error_code=errors.ILLEGAL_SASL_STATE, mechanisms=[])


def _sasl_authenticate_again(broker: Broker, request: Any, version: int, access: Access) -> Any:
    return _sasl_answer(errors.ILLEGAL_SASL_STATE, "no SASL exchange is in progress")


def _sasl_answer(code: int, message: str | None) -> Any:
    return SaslAuthenticateResponse(
        error_code=code, error_message=message, auth_bytes=b"", session_lifetime_ms=0
    )


BROKER_HANDLERS: dict[int, Handler] = {
    0: handle_produce,
    1: handle_fetch,
    2: handle_list_offsets,
    3: handle_metadata,
    protocol.API_VERSIONS_KEY: _api_versions,
    protocol.SASL_HANDSHAKE_KEY: _sasl_handshake_again,
    protocol.SASL_AUTHENTICATE_KEY: _sasl_authenticate_again,
    19: handle_create_topics,
    20: handle_delete_topics,
    22: handle_init_producer_id,
}


def _group_handlers(groups: KafkaGroupCoordinator) -> dict[int, Handler]:
    return {
        8: groups.offset_commit,
        9: groups.offset_fetch,
        10: groups.find_coordinator,
        11: groups.join_group,
        12: groups.heartbeat,
        13: groups.leave_group,
        14: groups.sync_group,
    }


_SIZE = struct.Struct(">i")


class _Refused(Exception):
    """An answer to send before the connection is closed (a failed authentication)."""

    def __init__(self, answer: bytes, why: str) -> None:
        super().__init__(why)
        self.answer = answer


class _Session:
    """One connection's authentication: its Access once known (at once on an open
    listener), and whether a v0 SaslHandshake made the next frame a bare PLAIN message."""

    __slots__ = ("access", "mechanism", "bare_token_next")

    def __init__(self, access: Access | None) -> None:
        self.access = access
        self.mechanism: str | None = None
        self.bare_token_next = False


class KafkaServer:
    def __init__(
        self,
        broker: Broker,
        coordinator: GroupCoordinator,
        max_connections: int,
        authenticator: Authenticator,
        requests: Counter | None = None,
    ) -> None:
        self._broker = broker
        self._authenticator = authenticator
        self._requests = requests  # counted per API name, when given
        self._max_connections = max_connections
        self._groups = KafkaGroupCoordinator(broker, coordinator)
        self._handlers = {**BROKER_HANDLERS, **_group_handlers(self._groups)}
        assert self._handlers.keys() == protocol.APIS.keys()
        self._listener: Listener | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self._groups.start()
        self._listener = await listen(self._protocol, host, port, backlog=ACCEPT_BACKLOG, tls=tls)

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        """What asyncio.start_server makes per connection: a reader, and a task of
        _on_connection."""
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._on_connection)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._groups.stop()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self._max_connections:
            log.warning("Kafka connection from %s refused: %d open", peer, self._max_connections)
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away, or stayed idle past connections_max_idle_ms
        except protocol.MalformedRequest as exc:
            log.warning("Kafka connection from %s closed: %s", peer, exc)
        except _Refused as exc:
            log.info("Kafka connection from %s refused: %s", peer, exc)
            with contextlib.suppress(ConnectionError):
                writer.write(exc.answer)
                await writer.drain()
        except Exception:  # a bug: this connection ends, the broker goes on
            log.exception("Kafka connection from %s failed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self._broker.settings
        session = _Session(None if self._authenticator.enabled else OPEN)
        while True:
            head = await asyncio.wait_for(
                reader.readexactly(_SIZE.size), s.connections_max_idle_ms / 1000
            )
            (size,) = _SIZE.unpack(head)
            if not 0 < size <= s.max_request_bytes:
                raise protocol.MalformedRequest(
                    f"a request of {size} bytes (max_request_bytes is {s.max_request_bytes})"
                )
            frame = await asyncio.wait_for(
                reader.readexactly(size), s.request_body_timeout_ms / 1000
            )
            if session.bare_token_next:
                await self._authenticate(session, frame)
                answer: bytes | None = _SIZE.pack(0)  # an empty SASL token: success
            else:
                answer = await self._answer(session, frame)
            if answer is not None:
                writer.write(answer)
                await writer.drain()

    async def _answer(self, session: _Session, frame: bytes) -> bytes | None:
        header = protocol.parse_header(frame)
        api = protocol.APIS.get(header.api_key)
        if api is None:
            raise protocol.MalformedRequest(f"unsupported API key {header.api_key}")
        if session.access is None and header.api_key not in BEFORE_AUTHENTICATION:
            raise protocol.MalformedRequest(
                f"{api.name} before SASL authentication (this listener needs SASL/PLAIN)"
            )
        if not api.accepts(header.api_version):
            if header.api_key == protocol.API_VERSIONS_KEY:
                return protocol.unsupported_api_versions(header)
            if header.api_key == protocol.PRODUCE_KEY and header.api_version >= api.min_version:
                old = refuse_old_produce(
                    protocol.decode_body(api, header, frame), header.api_version
                )
                return None if old is None else protocol.encode_response(api, header, old)
            raise protocol.MalformedRequest(
                f"{api.request.__name__} v{header.api_version} is not supported "
                f"(v{api.min_accepted}-v{api.max_version})"
            )
        request = protocol.decode_body(api, header, frame)
        if self._requests is not None:
            self._requests.labels(api.name).inc()
        if session.access is None:
            response = await self._sasl(session, api, header, request)
            return protocol.encode_response(api, header, response)
        handler = self._handlers[header.api_key]
        response = handler(self._broker, request, header.api_version, session.access)
        if isinstance(response, Awaitable):
            response = await response
        if response is None:  # Produce with acks=0: Kafka sends no response
            return None
        return protocol.encode_response(api, header, response)

    async def _sasl(
        self, session: _Session, api: protocol.Api, header: protocol.RequestHeader, request: Any
    ) -> Any:
        """The answer to ApiVersions, SaslHandshake or SaslAuthenticate before authentication."""
        key = header.api_key
        if key == protocol.API_VERSIONS_KEY:
            return protocol.api_versions_response()
        if key == protocol.SASL_HANDSHAKE_KEY:
            if session.mechanism is not None:
                raise protocol.MalformedRequest("a second SaslHandshake")
            if request.mechanism != PLAIN:
                answer = SaslHandshakeResponse(
                    error_code=errors.UNSUPPORTED_SASL_MECHANISM, mechanisms=list(MECHANISMS)
                )
                raise _Refused(
                    protocol.encode_response(api, header, answer),
                    f"SASL mechanism {request.mechanism!r} (PLAIN only)",
                )
            session.mechanism = PLAIN
            session.bare_token_next = header.api_version == 0
            return SaslHandshakeResponse(error_code=errors.NONE, mechanisms=list(MECHANISMS))
        if session.mechanism is None:
            raise protocol.MalformedRequest("SaslAuthenticate before SaslHandshake")
        try:
            await self._authenticate(session, request.auth_bytes)
        except _Refused as exc:
            refusal = _sasl_answer(errors.SASL_AUTHENTICATION_FAILED, str(exc))
            raise _Refused(protocol.encode_response(api, header, refusal), str(exc)) from None
        return _sasl_answer(errors.NONE, None)

    async def _authenticate(self, session: _Session, message: bytes) -> None:
        """Checks a PLAIN message; sets the session's Access or raises _Refused (with no
        answer: after a v0 handshake Kafka just closes the connection)."""
        session.bare_token_next = False
        try:
            credentials = parse_plain(message)
            user = await self._authenticator.user_of_token(credentials.password)
            if user.name != credentials.username:
                raise Unauthenticated("the token is not the username's")
        except (SaslError, Unauthenticated) as exc:
            why = exc.message if isinstance(exc, Unauthenticated) else str(exc)
            raise _Refused(b"", f"authentication failed: {why}") from None
        session.access = Access(user)
