"""An HTTP client of the contract, for the CLI, the tests and (later) chaos and bench.

Turns every error answer back into the contract's `RaftkaError` and retries the
retriable ones (503s) within a deadline, as a Kafka client retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from raftka.metadata.errors import RaftkaError, error_for_code

DEFAULT_BOOTSTRAP = "http://127.0.0.1:9091"
RETRY_BACKOFF_S = 0.2


class ClientError(RaftkaError):
    """The cluster could not be reached or answered something that is not the contract."""

    code = "CLIENT_ERROR"


class RaftkaClient:
    def __init__(self, bootstrap: str = DEFAULT_BOOTSTRAP, *, timeout_s: float = 60.0) -> None:
        self.base = bootstrap.rstrip("/")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def __aenter__(self) -> RaftkaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        retry_for_s: float = 10.0,
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for_s
        data = None if body is None else orjson.dumps(body)
        while True:
            try:
                async with self._session.request(
                    method, self.base + path, data=data, params=params
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                if loop.time() < deadline:
                    await asyncio.sleep(RETRY_BACKOFF_S)
                    continue
                raise ClientError(
                    f"cannot reach {self.base}: {exc or type(exc).__name__}"
                ) from None
            if status == 204:
                return None
            try:
                doc = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                raise ClientError(f"{self.base}{path} answered {status} with non-JSON") from None
            if status < 400:
                return doc
            err = (doc or {}).get("error", {}) if isinstance(doc, dict) else {}
            error = error_for_code(
                err.get("code", "INTERNAL_ERROR"), err.get("message", str(status))
            )
            if error.retriable and loop.time() < deadline:
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            raise error

    # -- the contract's calls ------------------------------------------------

    async def cluster(self) -> Any:
        return await self.request("GET", "/v1/cluster", retry_for_s=0)

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: dict[str, Any]
    ) -> Any:
        body = {
            "name": name,
            "partitions": partitions,
            "replication_factor": replication_factor,
            "config": config,
        }
        return await self.request("POST", "/v1/topics", body=body)

    async def list_topics(self) -> list[str]:
        return (await self.request("GET", "/v1/topics"))["topics"]

    async def describe_topic(self, name: str) -> Any:
        return await self.request("GET", f"/v1/topics/{name}")

    async def delete_topic(self, name: str) -> None:
        await self.request("DELETE", f"/v1/topics/{name}")

    async def produce(self, topic: str, records: list[dict[str, Any]], acks: str = "all") -> Any:
        return await self.request(
            "POST", f"/v1/topics/{topic}/records", body={"records": records}, params={"acks": acks}
        )

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int = 500,
        max_wait_ms: int = 0,
    ) -> Any:
        return await self.request(
            "GET",
            f"/v1/topics/{topic}/partitions/{partition}/records",
            params={"offset": offset, "max_records": max_records, "max_wait_ms": max_wait_ms},
        )

    async def offset(self, topic: str, partition: int, timestamp: str) -> int | None:
        doc = await self.request(
            "GET",
            f"/v1/topics/{topic}/partitions/{partition}/offsets",
            params={"timestamp": timestamp},
        )
        return doc["offset"]
