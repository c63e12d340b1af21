"""The Kafka listener: one asyncio server per broker on its `kafka` address.

Each connection reads size-prefixed request frames and answers them in order, one at a
time (as a Kafka broker does per connection), so a long-polling Fetch holds back only
its own connection's next request. The handlers call the broker as the HTTP routes do.
Limits as over HTTP: at most max_connections open connections (of this listener), a
frame of at most max_request_bytes, closed after connections_max_idle_ms without a
request or request_body_timeout_ms to receive one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from raftka.api.kafka import protocol
from raftka.api.kafka.admin import (
    handle_create_topics,
    handle_delete_topics,
    handle_init_producer_id,
)
from raftka.api.kafka.fetch import handle_fetch, handle_list_offsets
from raftka.api.kafka.groups import KafkaGroupCoordinator
from raftka.api.kafka.metadata import handle_metadata
from raftka.api.kafka.produce import handle_produce, refuse_old_produce

if TYPE_CHECKING:
    from prometheus_client import Counter

    from raftka.api.broker.broker import Broker
    from raftka.api.broker.coordinator import GroupCoordinator

log = logging.getLogger(__name__)

Handler = Callable[["Broker", Any, int], Any]


def _api_versions(broker: Broker, request: Any, version: int) -> Any:
    return protocol.api_versions_response()


BROKER_HANDLERS: dict[int, Handler] = {
    0: handle_produce,
    1: handle_fetch,
    2: handle_list_offsets,
    3: handle_metadata,
    protocol.API_VERSIONS_KEY: _api_versions,
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


class KafkaServer:
    def __init__(
        self,
        broker: Broker,
        coordinator: GroupCoordinator,
        max_connections: int,
        requests: Counter | None = None,
    ) -> None:
        self._broker = broker
        self._requests = requests  # counted per API name, when given
        self._max_connections = max_connections
        self._groups = KafkaGroupCoordinator(broker, coordinator)
        self._handlers = {**BROKER_HANDLERS, **_group_handlers(self._groups)}
        assert self._handlers.keys() == protocol.APIS.keys()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self._groups.start()
        self._server = await asyncio.start_server(
            self._on_connection, host, port, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
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
        except Exception:  # a bug: this connection ends, the broker goes on
            log.exception("Kafka connection from %s failed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self._broker.settings
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
            answer = await self._answer(frame)
            if answer is not None:
                writer.write(answer)
                await writer.drain()

    async def _answer(self, frame: bytes) -> bytes | None:
        header = protocol.parse_header(frame)
        api = protocol.APIS.get(header.api_key)
        if api is None:
            raise protocol.MalformedRequest(f"unsupported API key {header.api_key}")
        if not api.accepts(header.api_version):
            if header.api_key == protocol.API_VERSIONS_KEY:
                return protocol.unsupported_api_versions(header)
            if header.api_key == protocol.PRODUCE_KEY and header.api_version >= api.min_version:
                old = refuse_old_produce(
                    self._broker, protocol.decode_body(api, header, frame), header.api_version
                )
                return None if old is None else protocol.encode_response(api, header, old)
            raise protocol.MalformedRequest(
                f"{api.request.__name__} v{header.api_version} is not supported "
                f"(v{api.min_accepted}-v{api.max_version})"
            )
        request = protocol.decode_body(api, header, frame)
        if self._requests is not None:
            self._requests.labels(api.name).inc()
        response = self._handlers[header.api_key](self._broker, request, header.api_version)
        if isinstance(response, Awaitable):
            response = await response
        if response is None:  # Produce with acks=0: Kafka sends no response
            return None
        return protocol.encode_response(api, header, response)
