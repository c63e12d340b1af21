"""The brokers' hand-written HTTP/1.1 keep-alive client (api/keepalive.py) and the replica
fetch on it (api/broker/replica_transport.py), against a real aiohttp server standing in
for the leader's route: keep-alive reuse, the broker proof header, error answers, and
connections dropped when they cannot be reused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from raftka.api.broker.replica_transport import REPLICA_FETCH_PATH, HttpFetchTransport
from raftka.api.broker_auth import BROKER_AUTH_HEADER, BrokerAuth
from raftka.api.keepalive import KeepAliveClient
from raftka.metadata.errors import LeaderNotAvailable, RaftkaError
from raftka.replication.leader import FetchVerdict
from raftka.replication.protocol import (
    FetchAnswer,
    FetchRequest,
    PartitionAnswer,
    PartitionFetch,
    decode_request,
    encode_answer,
    encode_request,
)

SECRET = "s3cret"
REQUEST = FetchRequest(
    replica_id=2,
    max_wait_ms=0,
    max_bytes=1024,
    partitions=(PartitionFetch("t", "id", 0, 1, 5, 1),),
)
ANSWER = [PartitionAnswer("t", 0, FetchAnswer(FetchVerdict.READ, 5, 0, 9, None, b"records"))]


@dataclass
class Leader:
    """What the stand-in leader saw, and how it answers next."""

    peers: set[tuple[str, int]] = field(default_factory=set)
    requests: list[FetchRequest] = field(default_factory=list)
    answer: Callable[[], web.StreamResponse] = lambda: web.Response(
        body=encode_answer(ANSWER), content_type="application/octet-stream"
    )
    hold: asyncio.Event | None = None


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for piece in (b"first,", b"second"):
        await response.write(piece)
    await response.write_eof()
    return response


@pytest_asyncio.fixture
async def leader() -> AsyncIterator[tuple[Leader, TestServer]]:
    state = Leader()
    auth = BrokerAuth(SECRET)

    async def fetch(request: web.Request) -> web.StreamResponse:
        assert auth.verify("POST", request.path, request.headers.get(BROKER_AUTH_HEADER))
        state.peers.add(request.transport.get_extra_info("peername"))
        state.requests.append(decode_request(await request.read()))
        if state.hold is not None:
            await state.hold.wait()
        return state.answer()

    app = web.Application()
    app.router.add_post(REPLICA_FETCH_PATH, fetch)
    app.router.add_get("/chunked", _chunked)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield state, server
    await server.close()


def transport_to(server: TestServer) -> HttpFetchTransport:
    url = f"http://127.0.0.1:{server.port}"
    return HttpFetchTransport(lambda broker_id: url if broker_id == 1 else None, BrokerAuth(SECRET))


async def test_fetches_share_one_connection_and_carry_the_proof(
    leader: tuple[Leader, TestServer],
) -> None:
    state, server = leader
    transport = transport_to(server)
    try:
        for _ in range(3):
            answers = await transport(1, REQUEST, 5)
            assert [(a.topic, bytes(a.answer.records)) for a in answers] == [("t", b"records")]
    finally:
        await transport.close()
    assert state.requests == [REQUEST] * 3
    assert len(state.peers) == 1


async def test_an_error_answer_is_the_contract_error_and_the_connection_stays(
    leader: tuple[Leader, TestServer],
) -> None:
    state, server = leader
    state.answer = lambda: web.Response(
        status=503,
        body=orjson.dumps({"error": {"code": "LEADER_NOT_AVAILABLE", "message": "moved"}}),
        content_type="application/json",
    )
    transport = transport_to(server)
    try:
        with pytest.raises(LeaderNotAvailable):
            await transport(1, REQUEST, 5)
        state.answer = Leader().answer
        assert len(await transport(1, REQUEST, 5)) == 1
    finally:
        await transport.close()
    assert len(state.peers) == 1


async def test_a_cancelled_or_timed_out_fetch_closes_its_connection(
    leader: tuple[Leader, TestServer],
) -> None:
    state, server = leader
    state.hold = asyncio.Event()
    transport = transport_to(server)
    try:
        with pytest.raises(TimeoutError):
            await transport(1, REQUEST, 0.2)
        pending = asyncio.ensure_future(transport(1, REQUEST, 5))
        while len(state.requests) < 2:
            await asyncio.sleep(0.01)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        state.hold.set()
        assert len(await transport(1, REQUEST, 5)) == 1
    finally:
        await transport.close()
    assert len(state.peers) == 3  # a new connection after each abandoned one


async def test_an_unreachable_or_unknown_leader_is_a_connection_error(
    leader: tuple[Leader, TestServer],
) -> None:
    _, server = leader
    transport = transport_to(server)
    try:
        with pytest.raises(ConnectionError):
            await transport(2, REQUEST, 5)  # no URL known
        await server.close()
        with pytest.raises(ConnectionError):
            await transport(1, REQUEST, 5)
    finally:
        await transport.close()


async def test_a_leader_closing_after_its_answer_gets_a_new_connection_next_time(
    leader: tuple[Leader, TestServer],
) -> None:
    state, server = leader

    def closing() -> web.StreamResponse:
        response = web.Response(body=encode_answer(ANSWER))
        response.force_close()
        return response

    state.answer = closing
    transport = transport_to(server)
    try:
        assert len(await transport(1, REQUEST, 5)) == 1
        assert len(await transport(1, REQUEST, 5)) == 1
    finally:
        await transport.close()
    assert len(state.peers) == 2


async def test_a_connection_the_peer_closed_while_idle_is_replaced_without_losing_the_request(
    leader: tuple[Leader, TestServer],
) -> None:
    """The peer's idle timeout closes a kept connection; the next request, written to it
    before the client notices, is never read there, and goes again on a new connection."""
    state, server = leader
    client = KeepAliveClient()
    url = f"http://127.0.0.1:{server.port}{REPLICA_FETCH_PATH}"
    headers = BrokerAuth(SECRET).headers("POST", REPLICA_FETCH_PATH)
    try:
        first = await client.request(
            "POST", url, headers=headers, body=encode_request(REQUEST), timeout_s=5
        )
        assert first.status == 200
        # Close the server's side of the kept connection, as an idle timeout would.
        for protocol in list(server.runner.server.connections):  # type: ignore[union-attr]
            protocol.force_close()
            if protocol.transport is not None:
                protocol.transport.close()
        second = await client.request(
            "POST", url, headers=headers, body=encode_request(REQUEST), timeout_s=5
        )
        assert second.status == 200
    finally:
        await client.close()
    assert state.requests == [REQUEST, REQUEST]
    assert len(state.peers) == 2


def _no_content() -> web.StreamResponse:
    return web.Response(status=204)


async def test_answers_without_a_content_length_are_read_whole_and_the_connection_kept(
    leader: tuple[Leader, TestServer],
) -> None:
    """A 204 has no body (a commit's answer); a streamed answer comes in chunks."""
    state, server = leader
    state.answer = _no_content
    client = KeepAliveClient()
    base = f"http://127.0.0.1:{server.port}"
    headers = BrokerAuth(SECRET).headers("POST", REPLICA_FETCH_PATH)
    try:
        for _ in range(2):
            empty = await client.request(
                "POST",
                base + REPLICA_FETCH_PATH,
                headers=headers,
                body=encode_request(REQUEST),
                timeout_s=5,
            )
            assert (empty.status, empty.body) == (204, b"")
            streamed = await client.request("GET", base + "/chunked", headers={}, timeout_s=5)
            assert (streamed.status, streamed.body) == (200, b"first,second")
    finally:
        await client.close()
    assert len(state.peers) == 1


async def test_requests_past_the_connection_limit_wait_for_a_connection(
    leader: tuple[Leader, TestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of requests to one peer opens at most MAX_CONNECTIONS_PER_ORIGIN connections;
    the rest wait and go on connections as they come free."""
    monkeypatch.setattr("raftka.api.keepalive.MAX_CONNECTIONS_PER_ORIGIN", 2)
    state, server = leader
    state.hold = asyncio.Event()
    transport = transport_to(server)
    try:
        burst = [asyncio.ensure_future(transport(1, REQUEST, 10)) for _ in range(5)]
        while len(state.requests) < 2:
            await asyncio.sleep(0.01)
        assert len(state.requests) == 2  # the other three wait for a connection
        state.hold.set()
        assert [len(answers) for answers in await asyncio.gather(*burst)] == [1] * 5
    finally:
        await transport.close()
    assert len(state.requests) == 5
    assert len(state.peers) == 2


async def test_an_answer_that_is_not_the_contract_is_an_internal_error(
    leader: tuple[Leader, TestServer],
) -> None:
    state, server = leader
    state.answer = lambda: web.Response(status=502, text="bad gateway")
    transport = transport_to(server)
    try:
        with pytest.raises(RaftkaError) as refused:
            await transport(1, REQUEST, 5)
    finally:
        await transport.close()
    assert refused.value.code == "INTERNAL_ERROR"
    assert "broker 1 answered 502" in str(refused.value)


async def test_idle_connections_are_kept_up_to_a_number_and_for_a_time(
    leader: tuple[Leader, TestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a burst at most MAX_IDLE_PER_ORIGIN connections stay for reuse, and one idle
    for MAX_IDLE_S or longer is not reused."""
    monkeypatch.setattr("raftka.api.keepalive.MAX_IDLE_PER_ORIGIN", 2)
    state, server = leader
    transport = transport_to(server)

    async def burst(size: int) -> None:
        state.hold = asyncio.Event()
        seen = len(state.requests)
        requests = [asyncio.ensure_future(transport(1, REQUEST, 10)) for _ in range(size)]
        while len(state.requests) < seen + size:  # all in flight at once
            await asyncio.sleep(0.01)
        state.hold.set()
        await asyncio.gather(*requests)
        state.hold = None

    try:
        await burst(4)
        assert len(state.peers) == 4
        await burst(4)
        assert len(state.peers) == 6  # two kept from the first burst, two new
        monkeypatch.setattr("raftka.api.keepalive.MAX_IDLE_S", 0.0)
        await transport(1, REQUEST, 5)
        assert len(state.peers) == 7  # the kept ones were idle too long
    finally:
        await transport.close()
