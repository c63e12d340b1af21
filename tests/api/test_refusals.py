"""Refused requests, one table per route, against one broker shared by the module.

Every refusal has the contract's error shape, and a refused produce leaves nothing
visible: the partitions' high watermarks are the same after it as before.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from tests.api.support import assert_error, body_of, create_topic, high_watermark, produce

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOPIC = "refusals"
PARTITIONS = 3


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(shared_client: TestClient) -> AsyncIterator[TestClient]:
    """The shared broker with TOPIC (3 partitions) holding one record in each partition."""
    await create_topic(shared_client, TOPIC, partitions=PARTITIONS)
    for p in range(PARTITIONS):
        await produce(shared_client, TOPIC, [{"value": p}], partition=p)
    yield shared_client


async def watermarks(client: TestClient) -> list[int]:
    return [await high_watermark(client, TOPIC, p) for p in range(PARTITIONS)]


async def topic_names(client: TestClient) -> list[str]:
    names: list[str] = (await body_of(await client.get("/v1/topics")))["topics"]
    return names


# -- topics ------------------------------------------------------------------------

BAD_NAMES: list[tuple[str, object]] = [
    ("empty", ""),
    ("dot", "."),
    ("dotdot", ".."),
    ("slash", "a/b"),
    ("space", "a b"),
    ("250-chars", "x" * 250),
    ("non-ascii", "é"),
    ("newline", "a\nb"),
    ("number", 7),
    ("null", None),
    ("list", ["a"]),
    ("object", {"a": 1}),
    ("bool", True),
]


@pytest.mark.parametrize("name", [n for _, n in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
async def test_a_bad_topic_name_is_400_and_creates_nothing(api: TestClient, name: object) -> None:
    before = await topic_names(api)
    await assert_error(await api.post("/v1/topics", json={"name": name}), 400, "INVALID_REQUEST")
    assert await topic_names(api) == before


async def test_a_missing_topic_name_is_400(api: TestClient) -> None:
    await assert_error(await api.post("/v1/topics", json={}), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("path_name", ["x" * 250, "a%20b", "a:b"])
async def test_a_bad_topic_name_in_the_path_is_400(api: TestClient, path_name: str) -> None:
    await assert_error(await api.get(f"/v1/topics/{path_name}"), 400, "INVALID_REQUEST")


BAD_CREATES: list[tuple[str, dict[str, Any]]] = [
    ("partitions-zero", {"partitions": 0}),
    ("partitions-negative", {"partitions": -1}),
    ("partitions-string", {"partitions": "3"}),
    ("partitions-float", {"partitions": 1.5}),
    ("partitions-bool", {"partitions": True}),
    ("partitions-null", {"partitions": None}),
    ("partitions-huge", {"partitions": 10**9}),
    ("rf-zero", {"replication_factor": 0}),
    ("rf-negative", {"replication_factor": -1}),
    ("rf-string", {"replication_factor": "1"}),
    ("rf-bool", {"replication_factor": True}),
    ("rf-float", {"replication_factor": 1.0}),
    ("unknown-field", {"partition": 1}),
    ("config-unknown-key", {"config": {"cleanup_policy": "compact"}}),
    ("config-string", {"config": "retention_ms=1"}),
    ("config-list", {"config": []}),
    ("config-false", {"config": False}),
    ("config-zero", {"config": 0}),
    ("min-isr-above-rf", {"config": {"min_insync_replicas": 2}}),
    ("min-isr-zero", {"config": {"min_insync_replicas": 0}}),
    ("min-isr-string", {"config": {"min_insync_replicas": "1"}}),
    ("retention-ms-zero", {"config": {"retention_ms": 0}}),
    ("retention-ms-string", {"config": {"retention_ms": "1d"}}),
    ("retention-bytes-minus-two", {"config": {"retention_bytes": -2}}),
    ("segment-bytes-tiny", {"config": {"segment_bytes": 1}}),
    ("segment-bytes-float", {"config": {"segment_bytes": 1e6}}),
]


@pytest.mark.parametrize("fields", [f for _, f in BAD_CREATES], ids=[i for i, _ in BAD_CREATES])
async def test_a_bad_create_field_is_400_and_creates_nothing(
    api: TestClient, fields: dict[str, Any]
) -> None:
    resp = await api.post("/v1/topics", json={"name": "never", **fields})
    await assert_error(resp, 400, "INVALID_REQUEST")
    assert "never" not in await topic_names(api)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'"name"', b"null", b"\xff\xfe"],
    ids=["empty", "truncated", "list", "string", "null", "not-utf8"],
)
async def test_a_create_body_that_is_not_a_json_object_is_400(api: TestClient, body: bytes) -> None:
    await assert_error(await api.post("/v1/topics", data=body), 400, "INVALID_REQUEST")


# -- produce -----------------------------------------------------------------------

B64 = base64.b64encode(b"raw").decode()

BAD_RECORDS: list[tuple[str, object]] = [
    ("record-not-object", [1]),
    ("record-list", [["value", 1]]),
    ("record-null", [None]),
    ("second-record-bad", [{"value": 1}, "x"]),
    ("unknown-record-field", [{"value": 1, "offset": 3}]),
    ("value-and-value_b64", [{"value": 1, "value_b64": B64}]),
    ("key-and-key_b64", [{"key": "k", "key_b64": B64, "value": 1}]),
    ("missing-value", [{"key": "k"}]),
    ("empty-record", [{}]),
    ("value_b64-not-base64", [{"value_b64": "not base64!"}]),
    ("value_b64-bad-padding", [{"value_b64": "cmF3"[:3]}]),
    ("value_b64-not-string", [{"value_b64": 12}]),
    ("key_b64-not-base64", [{"key_b64": "@@@", "value": 1}]),
    ("key_b64-null", [{"key_b64": None, "value": 1}]),
    ("headers-list", [{"value": 1, "headers": [["a", "b"]]}]),
    ("headers-string", [{"value": 1, "headers": "a=b"}]),
    ("header-value-number", [{"value": 1, "headers": {"a": 1}}]),
    ("header-value-null", [{"value": 1, "headers": {"a": None}}]),
    ("header-value-object", [{"value": 1, "headers": {"a": {"b": "c"}}}]),
    ("partition-negative", [{"value": 1, "partition": -1}]),
    ("partition-string", [{"value": 1, "partition": "0"}]),
    ("partition-float", [{"value": 1, "partition": 0.0}]),
    ("partition-bool", [{"value": 1, "partition": False}]),
    ("timestamp-negative", [{"value": 1, "timestamp": -1}]),
    ("timestamp-string", [{"value": 1, "timestamp": "1700000000000"}]),
    ("timestamp-float", [{"value": 1, "timestamp": 1.5}]),
    ("timestamp-bool", [{"value": 1, "timestamp": True}]),
    ("timestamp-huge", [{"value": 1, "timestamp": 2**62}]),
]


@pytest.mark.parametrize("records", [r for _, r in BAD_RECORDS], ids=[i for i, _ in BAD_RECORDS])
@pytest.mark.parametrize("endpoint", ["topic", "partition"])
async def test_a_bad_record_is_400_and_writes_nothing(
    api: TestClient, records: object, endpoint: str
) -> None:
    before = await watermarks(api)
    path = f"/v1/topics/{TOPIC}" + ("/partitions/0" if endpoint == "partition" else "")
    # A good record first: the whole request must be refused, not just its bad part.
    good_then_bad = [{"value": "good"}, *records] if isinstance(records, list) else records
    resp = await api.post(f"{path}/records", json={"records": good_then_bad})
    await assert_error(resp, 400, "INVALID_REQUEST")
    assert await watermarks(api) == before


BAD_BODIES: list[tuple[str, bytes]] = [
    ("malformed-json", b'{"records": [{"value": 1}'),
    ("trailing-garbage", b'{"records": [{"value": 1}]} x'),
    ("not-utf8", b'{"records": [{"value": "\xff"}]}'),
    ("empty-body", b""),
    ("body-list", b'[{"value": 1}]'),
    ("body-string", b'"hello"'),
    ("body-null", b"null"),
    ("records-missing", b"{}"),
    ("records-empty", b'{"records": []}'),
    ("records-object", b'{"records": {"value": 1}}'),
    ("records-string", b'{"records": "abc"}'),
    ("records-null", b'{"records": null}'),
    ("unknown-top-level-field", b'{"records": [{"value": 1}], "acks": "all"}'),
    ("producer-on-topic-endpoint", b'{"records": [{"value": 1}], "producer": {"id": 1}}'),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[i for i, _ in BAD_BODIES])
async def test_a_produce_body_that_is_not_a_valid_request_is_400(
    api: TestClient, body: bytes
) -> None:
    before = await watermarks(api)
    resp = await api.post(f"/v1/topics/{TOPIC}/records", data=body)
    await assert_error(resp, 400, "INVALID_REQUEST")
    assert await watermarks(api) == before


@pytest.mark.parametrize("acks", ["2", "-2", "", "ALL", "none", "1.0"])
async def test_bad_acks_are_400_and_write_nothing(api: TestClient, acks: str) -> None:
    before = await watermarks(api)
    resp = await api.post(
        f"/v1/topics/{TOPIC}/records", params={"acks": acks}, json={"records": [{"value": 1}]}
    )
    await assert_error(resp, 400, "INVALID_REQUEST")
    assert await watermarks(api) == before


async def test_an_explicit_partition_out_of_range_is_404_and_writes_nothing(
    api: TestClient,
) -> None:
    before = await watermarks(api)
    records = [{"value": 1, "partition": 0}, {"value": 2, "partition": PARTITIONS}]
    resp = await api.post(f"/v1/topics/{TOPIC}/records", json={"records": records})
    await assert_error(resp, 404, "UNKNOWN_PARTITION")
    assert await watermarks(api) == before


async def test_a_record_partition_other_than_the_paths_is_400(api: TestClient) -> None:
    before = await watermarks(api)
    resp = await api.post(
        f"/v1/topics/{TOPIC}/partitions/0/records", json={"records": [{"value": 1, "partition": 1}]}
    )
    await assert_error(resp, 400, "INVALID_REQUEST")
    assert await watermarks(api) == before


@pytest.mark.parametrize(
    ("partition", "status", "code"),
    [
        (str(PARTITIONS), 404, "UNKNOWN_PARTITION"),
        ("99999", 404, "UNKNOWN_PARTITION"),
        ("-1", 400, "INVALID_REQUEST"),
        ("x", 400, "INVALID_REQUEST"),
        ("1.0", 400, "INVALID_REQUEST"),
        ("²", 400, "INVALID_REQUEST"),
        ("٣", 400, "INVALID_REQUEST"),
    ],
)
async def test_a_bad_partition_in_the_path_is_refused_by_produce_and_fetch(
    api: TestClient, partition: str, status: int, code: str
) -> None:
    before = await watermarks(api)
    path = f"/v1/topics/{TOPIC}/partitions/{partition}"
    resp = await api.post(f"{path}/records", json={"records": [{"value": 1}]})
    await assert_error(resp, status, code)
    await assert_error(await api.get(f"{path}/records", params={"offset": "0"}), status, code)
    await assert_error(await api.get(f"{path}/offsets"), status, code)
    assert await watermarks(api) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1/topics/nope/records",
        "/v1/topics/nope/partitions/0/records",
    ],
)
async def test_producing_to_an_unknown_topic_is_404_and_creates_nothing(
    api: TestClient, path: str
) -> None:
    resp = await api.post(path, json={"records": [{"value": 1}]})
    await assert_error(resp, 404, "UNKNOWN_TOPIC")
    assert "nope" not in await topic_names(api)


# -- fetch and offsets ---------------------------------------------------------------

BAD_FETCH_QUERIES: list[tuple[str, dict[str, str]]] = [
    ("offset-missing", {}),
    ("offset-negative", {"offset": "-1"}),
    ("offset-word", {"offset": "first"}),
    ("offset-empty", {"offset": ""}),
    ("offset-float", {"offset": "1.0"}),
    ("offset-underscore", {"offset": "0_0"}),
    ("offset-spaces", {"offset": " 0 "}),
    ("offset-arabic-digit", {"offset": "٠"}),
    ("max_records-zero", {"offset": "0", "max_records": "0"}),
    ("max_records-negative", {"offset": "0", "max_records": "-5"}),
    ("max_records-word", {"offset": "0", "max_records": "many"}),
    ("max_records-too-many", {"offset": "0", "max_records": str(10**9)}),
    ("max_bytes-zero", {"offset": "0", "max_bytes": "0"}),
    ("max_bytes-word", {"offset": "0", "max_bytes": "1MB"}),
    ("max_wait_ms-negative", {"offset": "0", "max_wait_ms": "-1"}),
    ("max_wait_ms-word", {"offset": "0", "max_wait_ms": "soon"}),
]


@pytest.mark.parametrize(
    "query", [q for _, q in BAD_FETCH_QUERIES], ids=[i for i, _ in BAD_FETCH_QUERIES]
)
async def test_a_bad_fetch_query_is_400(api: TestClient, query: dict[str, str]) -> None:
    resp = await api.get(f"/v1/topics/{TOPIC}/partitions/0/records", params=query)
    await assert_error(resp, 400, "INVALID_REQUEST")


@pytest.mark.parametrize("offset", [2, 3, 10**12])
async def test_fetching_past_the_end_is_416_with_the_readable_range(
    api: TestClient, offset: int
) -> None:
    resp = await api.get(f"/v1/topics/{TOPIC}/partitions/1/records", params={"offset": offset})
    error = await assert_error(resp, 416, "OFFSET_OUT_OF_RANGE")
    assert (error["log_start_offset"], error["high_watermark"]) == (0, 1)


async def test_fetching_an_unknown_topic_is_404(api: TestClient) -> None:
    resp = await api.get("/v1/topics/nope/partitions/0/records", params={"offset": "0"})
    await assert_error(resp, 404, "UNKNOWN_TOPIC")
    await assert_error(await api.get("/v1/topics/nope/partitions/0/offsets"), 404, "UNKNOWN_TOPIC")


@pytest.mark.parametrize("timestamp", ["-1", "yesterday", "", "1.5", "1e3", "EARLIEST", "٣"])
async def test_a_bad_offsets_timestamp_is_400(api: TestClient, timestamp: str) -> None:
    resp = await api.get(
        f"/v1/topics/{TOPIC}/partitions/0/offsets", params={"timestamp": timestamp}
    )
    await assert_error(resp, 400, "INVALID_REQUEST")


# -- routes ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/v1", "/v2/topics", "/v1/topic", "/v1/topics/a/b/c"])
async def test_an_unknown_route_is_404_in_the_error_shape(api: TestClient, path: str) -> None:
    await assert_error(await api.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/topics"),
        ("DELETE", "/v1/topics"),
        ("POST", f"/v1/topics/{TOPIC}"),
        ("PATCH", f"/v1/topics/{TOPIC}"),
        ("GET", f"/v1/topics/{TOPIC}/records"),
        ("DELETE", f"/v1/topics/{TOPIC}/partitions/0/records"),
        ("POST", f"/v1/topics/{TOPIC}/partitions/0/offsets"),
        ("POST", "/v1/cluster"),
        ("GET", "/v1/producers"),
        ("POST", "/healthz"),
    ],
)
async def test_a_wrong_method_is_405_in_the_error_shape(
    api: TestClient, method: str, path: str
) -> None:
    resp = await api.request(method, path)
    await assert_error(resp, 405, "METHOD_NOT_ALLOWED")
    allowed = resp.headers["Allow"].split(", ")  # RFC 9110: a 405 says what is allowed
    assert allowed and method not in allowed
