"""Inputs an attacker would try: integers wider than 64 bits, in a body or a query, and
more requests in flight than a broker should hold. Each gets the contract's error shape."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import MakeClient
from tests.api.support import assert_error, create_topic, fetch, high_watermark, produce

WIDE = [2**64, -(2**63) - 1, 10**40]


@pytest.mark.parametrize("where", ["value", "key", "nested"])
@pytest.mark.parametrize("number", WIDE)
async def test_an_integer_wider_than_64_bits_is_refused_not_rounded(
    client: TestClient, where: str, number: int
) -> None:
    await create_topic(client, "wide")
    record = {
        "value": "v" if where != "value" else number,
        "key": number if where == "key" else None,
    }
    if where == "nested":
        record["value"] = {"a": [1, {"b": number}]}
    body = json.dumps({"records": [record]}).encode()  # exact integers: orjson refuses them
    resp = await client.post("/v1/topics/wide/partitions/0/records", data=body)
    await assert_error(resp, 400, "INVALID_REQUEST")
    assert await high_watermark(client, "wide") == 0


async def test_64_bit_integers_and_long_digit_strings_are_kept_exact(client: TestClient) -> None:
    await create_topic(client, "exact")
    values = [2**64 - 1, -(2**63), "123456789012345678901234567890"]
    await produce(client, "exact", [{"value": v, "key": v} for v in values], partition=0)
    records = (await fetch(client, "exact"))["records"]
    assert [(r["key"], r["value"]) for r in records] == [(v, v) for v in values]


@pytest.mark.parametrize("param", ["offset", "max_records", "max_wait_ms"])
async def test_a_query_integer_of_thousands_of_digits_is_a_400(
    client: TestClient, param: str
) -> None:
    await create_topic(client, "q")
    query = {"offset": "0", param: "9" * 5000}
    resp = await client.get("/v1/topics/q/partitions/0/records", params=query)
    await assert_error(resp, 400, "INVALID_REQUEST")
    resp = await client.get("/v1/topics/q/partitions/0/offsets", params={"timestamp": "9" * 5000})
    await assert_error(resp, 400, "INVALID_REQUEST")


async def test_long_polls_past_the_per_client_bound_are_refused_with_429(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_long_polls_per_client=2)
    await create_topic(client, "lp")
    path = "/v1/topics/lp/partitions/0/records?offset=0&max_wait_ms=20000"
    waiting = [asyncio.ensure_future(client.get(path)) for _ in range(2)]
    metrics = ""
    while "raftka_long_polls 2.0" not in metrics:
        metrics = await (await client.get("/metrics")).text()
    refused = await client.get(path)
    await assert_error(refused, 429, "TOO_MANY_REQUESTS")
    assert refused.headers["Retry-After"] == "1"
    assert "raftka_long_poll_refusals_total 1.0" in await (await client.get("/metrics")).text()
    # A plain fetch is no long-poll: it is served.
    assert (await fetch(client, "lp"))["records"] == []
    await produce(client, "lp", [{"value": 1}], partition=0)
    for w in waiting:
        assert (await w).status == 200


async def test_bodies_past_the_in_flight_budget_are_refused_with_429(
    make_client: MakeClient,
) -> None:
    """A slow client holds its declared body size from its headers on; a request that
    would pass max_in_flight_request_bytes is refused at once, and served once it left."""
    client = await make_client(max_request_bytes=3000, max_in_flight_request_bytes=4000)
    await create_topic(client, "mem")
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST /v1/topics/mem/partitions/0/records HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 2500\r\n\r\n" + b'{"records": ['
    )
    await writer.drain()
    metrics = ""
    while "raftka_in_flight_request_bytes 2500.0" not in metrics:
        metrics = await (await client.get("/metrics")).text()
    body = b'{"records": [{"value": "%s"}]}' % (b"x" * 2000)
    resp = await client.post("/v1/topics/mem/partitions/0/records", data=body)
    await assert_error(resp, 429, "TOO_MANY_REQUESTS")
    writer.close()
    await writer.wait_closed()
    del reader
    while "raftka_in_flight_request_bytes 0.0" not in metrics:
        metrics = await (await client.get("/metrics")).text()
    resp = await client.post("/v1/topics/mem/partitions/0/records", data=body)
    assert resp.status == 200, await resp.text()
