"""Small helpers the API tests share: create a topic, produce, read a partition back."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient


async def body_of(resp: ClientResponse) -> Any:
    return await resp.json(content_type=None)


async def create_topic(client: TestClient, name: str, **fields: Any) -> dict[str, Any]:
    resp = await client.post("/v1/topics", json={"name": name, **fields})
    assert resp.status == 201, await resp.text()
    return await body_of(resp)


async def produce(
    client: TestClient,
    topic: str,
    records: list[dict[str, Any]],
    *,
    partition: int | None = None,
    acks: str | None = None,
) -> list[dict[str, Any]]:
    path = f"/v1/topics/{topic}" + (f"/partitions/{partition}" if partition is not None else "")
    params = {"acks": acks} if acks is not None else {}
    resp = await client.post(f"{path}/records", json={"records": records}, params=params)
    assert resp.status == 200, await resp.text()
    offsets: list[dict[str, Any]] = (await body_of(resp))["offsets"]
    return offsets


async def fetch(
    client: TestClient, topic: str, partition: int = 0, **params: int | str
) -> dict[str, Any]:
    query = {"offset": 0, **params}
    resp = await client.get(
        f"/v1/topics/{topic}/partitions/{partition}/records",
        params={k: str(v) for k, v in query.items()},
    )
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await body_of(resp)
    return answer


async def read_all(client: TestClient, topic: str, partition: int = 0) -> list[dict[str, Any]]:
    """Every readable record of a partition, fetched page by page."""
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await fetch(client, topic, partition, offset=offset)
        records.extend(page["records"])
        if page["next_offset"] >= page["high_watermark"]:
            return records
        offset = page["next_offset"]


async def high_watermark(client: TestClient, topic: str, partition: int = 0) -> int:
    resp = await client.get(f"/v1/topics/{topic}")
    assert resp.status == 200, await resp.text()
    hw: int = (await body_of(resp))["partitions"][partition]["high_watermark"]
    return hw


async def assert_error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's error shape with this status and code."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/json", text
    body = await body_of(resp)
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    if status == 503:
        assert resp.headers.get("Retry-After", "").isdigit(), resp.headers
    return error
