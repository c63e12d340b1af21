"""The replica fetch over HTTP: how a follower's fetcher reaches a leader broker.

Owns one aiohttp session for broker-to-broker fetches and the mapping of failures: anything
that means "the leader cannot be reached" becomes ConnectionError, an error answer becomes
the contract's error. The fetch protocol itself is in replication/.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import orjson

from raftka.metadata.errors import error_for_code
from raftka.replication.protocol import (
    FetchRequest,
    PartitionAnswer,
    decode_answer,
    encode_request,
)

REPLICA_FETCH_PATH = "/internal/replica/fetch"


class HttpFetchTransport:
    def __init__(self, broker_url: Callable[[int], str | None]) -> None:
        self._broker_url = broker_url
        self._session: aiohttp.ClientSession | None = None

    async def __call__(
        self, leader_id: int, request: FetchRequest, timeout_s: float
    ) -> list[PartitionAnswer]:
        url = self._broker_url(leader_id)
        if url is None:
            raise ConnectionError(f"broker {leader_id} has no known URL")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url + REPLICA_FETCH_PATH,
                data=encode_request(request),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionError(f"broker {leader_id} at {url}: {exc}") from None
        if status != 200:
            try:
                error = orjson.loads(body)["error"]
                raise error_for_code(error["code"], error["message"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise ConnectionError(f"broker {leader_id} answered {status}") from None
        return decode_answer(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
