"""Broker-to-broker routes under /internal/: replica fetches, broker sessions with the
controller, partition offsets, and the digest of the applied metadata.

Handlers only translate: the replica fetch's rules live in replication/ (the manager
answers, and waits for news when a follower is caught up). These routes are for brokers of
this cluster only: with a cluster secret, api/auth.py refuses (403) any request that does
not prove it comes from one.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from raftka.api.broker.controller_session import SESSION_CLEAN_END
from raftka.api.http.context import BROKER_KEY, int_path_param, json_response, topic_param
from raftka.metadata.errors import InvalidRequest, NoController
from raftka.replication.protocol import decode_request, encode_answer

# A follower asks for replica_fetch_wait_max_ms; a leader never holds a fetch longer.
MAX_REPLICA_FETCH_WAIT_MS = 30_000


async def replica_fetch(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    try:
        fetch = decode_request(await request.read())
    except ValueError as exc:
        raise InvalidRequest(f"malformed replica fetch: {exc}") from None
    manager = broker.replicas
    answers, news = manager.answer_fetch(fetch)
    wait_ms = min(fetch.max_wait_ms, MAX_REPLICA_FETCH_WAIT_MS)
    if not news and wait_ms > 0:
        await manager.wait_for_news(fetch, wait_ms / 1000)
        answers, _ = manager.answer_fetch(fetch)
    # A Response, not a StreamResponse: aiohttp sends its headers and body in one system call.
    return web.Response(body=encode_answer(answers), content_type="application/octet-stream")


async def broker_session(request: web.Request) -> web.StreamResponse:
    """A broker's session with the controller: held open until either side goes away. The
    answer starts at once (so the broker knows it is connected) and never ends by itself."""
    broker = request.app[BROKER_KEY]
    broker_id = int_path_param(request, "broker_id")
    if not broker.is_controller:
        raise NoController(f"broker {broker.broker_id} is not the controller")
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    try:
        await response.prepare(request)
        await response.write(b"\n")
    except ConnectionResetError:
        return response  # the broker is already gone: the session never opened

    def is_open() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    if await broker.controller.hold_session(broker_id, is_open):
        # We stepped down: a clean end tells the broker we did not die (so it will not
        # have us fenced if it becomes the next controller).
        with contextlib.suppress(ConnectionResetError):
            await response.write(SESSION_CLEAN_END)
    return response


async def leader_offsets(request: web.Request) -> web.Response:
    """log_start_offset and high_watermark of the partitions led here (for describe)."""
    broker = request.app[BROKER_KEY]
    name = topic_param(request)
    return json_response({"partitions": await broker.local_offsets(name)})


async def metadata_digest(request: web.Request) -> web.Response:
    """What this broker has applied of the metadata log, for comparing brokers."""
    digest = await request.app[BROKER_KEY].metadata_digest()
    return json_response(
        {
            "broker_id": request.app[BROKER_KEY].broker_id,
            "commit_index": digest.commit_index,
            "applied_index": digest.applied_index,
            "digest": digest.digest,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/internal/replica/fetch", replica_fetch)
    app.router.add_post("/internal/brokers/{broker_id}/session", broker_session)
    app.router.add_get("/internal/topics/{topic}/offsets", leader_offsets)
    app.router.add_get("/internal/metadata", metadata_digest)
