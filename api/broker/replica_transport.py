"""The replica fetch over HTTP: how a follower's fetcher reaches a leader broker.

Sends each fetch on a kept-alive connection to the leader (api/keepalive.py: a fetcher
sends one request at a time, so one connection per leader carries them all) and maps
failures as the fetcher expects: anything that means "the leader cannot be reached"
becomes ConnectionError, an error answer the contract's error (forward.peer_error). The
fetch protocol itself is in replication/.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from raftka.api.broker_auth import BrokerAuth
from raftka.api.http.forward import peer_error
from raftka.api.keepalive import KeepAliveClient
from raftka.replication.protocol import (
    FetchRequest,
    PartitionAnswer,
    decode_answer,
    encode_request,
)

REPLICA_FETCH_PATH = "/internal/replica/fetch"


class HttpFetchTransport:
    def __init__(
        self,
        broker_url: Callable[[int], str | None],
        auth: BrokerAuth | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self._broker_url = broker_url
        self._auth = auth or BrokerAuth(None)
        self._client = KeepAliveClient(client_ssl)

    async def __call__(
        self, leader_id: int, request: FetchRequest, timeout_s: float
    ) -> list[PartitionAnswer]:
        url = self._broker_url(leader_id)
        if url is None:
            raise ConnectionError(f"broker {leader_id} has no known URL")
        answer = await self._client.request(
            "POST",
            url + REPLICA_FETCH_PATH,
            headers={
                "Content-Type": "application/json",
                **self._auth.headers("POST", REPLICA_FETCH_PATH),
            },
            body=encode_request(request),
            timeout_s=timeout_s,
        )
        if answer.status != 200:
            raise peer_error(answer.status, answer.body, f"broker {leader_id}")
        return decode_answer(answer.body)

    async def close(self) -> None:
        await self._client.close()
