"""Produce: partition choice, acks, and records read back exactly as written."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from raftka.api.partitioner import partition_for_key
from tests.api.support import assert_error, create_topic, fetch, high_watermark, produce, read_all

PARTITIONS = 5
ACKS0_DEADLINE_S = 10.0


def now_ms() -> int:
    return int(time.time() * 1000)


def expected_partition(key_bytes: bytes) -> int:
    return partition_for_key(key_bytes, PARTITIONS)


@pytest.mark.parametrize("acks", ["1", "all", "-1", None])
async def test_acknowledged_produce_answers_consecutive_offsets(
    client: TestClient, acks: str | None
) -> None:
    await create_topic(client, "t")
    first = await produce(client, "t", [{"value": 1}, {"value": 2}], acks=acks)
    second = await produce(client, "t", [{"value": 3}], partition=0, acks=acks)
    assert first == [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}]
    assert second == [{"partition": 0, "offset": 2}]
    assert [r["value"] for r in await read_all(client, "t")] == [1, 2, 3]


async def test_acks_0_answers_null_offsets_and_still_writes(client: TestClient) -> None:
    await create_topic(client, "t", partitions=2)
    records = [{"value": "a", "partition": 1}, {"value": "b", "partition": 0}]
    assert await produce(client, "t", records, acks="0") == [
        {"partition": 1, "offset": None},
        {"partition": 0, "offset": None},
    ]
    assert await produce(client, "t", [{"value": "c"}], partition=1, acks="0") == [
        {"partition": 1, "offset": None}
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ACKS0_DEADLINE_S
    while [await high_watermark(client, "t", p) for p in (0, 1)] != [1, 2]:
        assert loop.time() < deadline, "acks=0 records never became readable"
        await asyncio.sleep(0.01)
    assert [r["value"] for r in await read_all(client, "t", 1)] == ["a", "c"]


KEYS: list[tuple[str, dict[str, Any], bytes]] = [
    ("string", {"key": "user-42"}, b"user-42"),
    ("unicode-string", {"key": "clé-ü"}, "clé-ü".encode()),
    ("key_b64", {"key_b64": base64.b64encode(b"\x00\xffbin").decode()}, b"\x00\xffbin"),
    ("number", {"key": 12345}, b"12345"),
    ("object", {"key": {"b": 1, "a": [1, 2]}}, b'{"b":1,"a":[1,2]}'),
    ("array", {"key": [1, "x", None]}, b'[1,"x",null]'),
    ("bool", {"key": True}, b"true"),
]


@pytest.mark.parametrize(("key", "key_bytes"), [k[1:] for k in KEYS], ids=[k[0] for k in KEYS])
async def test_a_keyed_record_lands_on_murmur2_of_its_key_bytes(
    client: TestClient, key: dict[str, Any], key_bytes: bytes
) -> None:
    await create_topic(client, "keyed", partitions=PARTITIONS)
    offsets = await produce(client, "keyed", [{**key, "value": 1}, {**key, "value": 2}])
    want = expected_partition(key_bytes)
    assert [o["partition"] for o in offsets] == [want, want]
    assert [o["offset"] for o in offsets] == [0, 1]


async def test_keys_spread_over_partitions_as_kafka_would(client: TestClient) -> None:
    await create_topic(client, "keyed", partitions=PARTITIONS)
    keys = [f"k{i}" for i in range(40)]
    offsets = await produce(client, "keyed", [{"key": k, "value": k} for k in keys])
    assert [o["partition"] for o in offsets] == [expected_partition(k.encode()) for k in keys]
    for p in range(PARTITIONS):
        assert [r["key"] for r in await read_all(client, "keyed", p)] == [
            k for k in keys if expected_partition(k.encode()) == p
        ]


@pytest.mark.parametrize("key", [{}, {"key": None}], ids=["absent", "null"])
async def test_keyless_records_of_one_request_go_to_one_partition_rotating_between_requests(
    client: TestClient, key: dict[str, Any]
) -> None:
    await create_topic(client, "sticky", partitions=3)
    seen = []
    for _ in range(3):
        offsets = await produce(client, "sticky", [{**key, "value": i} for i in range(4)])
        partitions = {o["partition"] for o in offsets}
        assert len(partitions) == 1, offsets
        seen.append(partitions.pop())
        assert [o["offset"] for o in offsets] == [0, 1, 2, 3]
    assert sorted(seen) == [0, 1, 2]
    assert [await high_watermark(client, "sticky", p) for p in range(3)] == [4, 4, 4]


async def test_keyless_records_beside_keyed_ones_share_one_partition(client: TestClient) -> None:
    await create_topic(client, "mixed", partitions=PARTITIONS)
    records = [{"value": 0}, {"key": "k", "value": 1}, {"value": 2}, {"key": None, "value": 3}]
    offsets = await produce(client, "mixed", records)
    assert offsets[1]["partition"] == expected_partition(b"k")
    keyless = {offsets[i]["partition"] for i in (0, 2, 3)}
    assert len(keyless) == 1


async def test_an_explicit_partition_wins_over_the_key(client: TestClient) -> None:
    await create_topic(client, "t", partitions=PARTITIONS)
    p = (expected_partition(b"k") + 1) % PARTITIONS
    offsets = await produce(client, "t", [{"key": "k", "value": 1, "partition": p}])
    assert offsets == [{"partition": p, "offset": 0}]


async def test_offsets_are_answered_in_request_order_across_partitions(
    client: TestClient,
) -> None:
    await create_topic(client, "t", partitions=3)
    order = [2, 0, 2, 1, 0, 2]
    records = [{"value": i, "partition": p} for i, p in enumerate(order)]
    offsets = await produce(client, "t", records)
    assert offsets == [
        {"partition": 2, "offset": 0},
        {"partition": 0, "offset": 0},
        {"partition": 2, "offset": 1},
        {"partition": 1, "offset": 0},
        {"partition": 0, "offset": 1},
        {"partition": 2, "offset": 2},
    ]
    for o, i in zip(offsets, range(len(order)), strict=True):
        [record] = (await fetch(client, "t", o["partition"], offset=o["offset"], max_records=1))[
            "records"
        ]
        assert record["value"] == i


VALUES: list[tuple[str, Any]] = [
    ("object", {"id": 1, "tags": ["a", "b"], "nested": {"x": None, "y": False}}),
    ("array", [1, "two", 3.5, None, True, {"k": []}]),
    ("integer", 42),
    ("negative-big-integer", -(2**53) - 1),
    ("float", 3.25),
    ("null", None),
    ("empty-string", ""),
    ("unicode", "héllo wörld ✓ 日本語 🎉"),
    ("escapes", 'quote " backslash \\ newline \n tab \t nul \u0000'),
    ("false", False),
    ("empty-object", {}),
]


@pytest.mark.parametrize("value", [v for _, v in VALUES], ids=[i for i, _ in VALUES])
async def test_any_json_value_and_key_read_back_as_written(client: TestClient, value: Any) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"key": value, "value": value, "partition": 0}])
    [record] = await read_all(client, "t")
    assert record["value"] == value
    assert record["key"] == value
    assert type(record["value"]) is type(value)
    assert record["headers"] == {}


async def test_b64_records_read_back_in_b64_form(client: TestClient) -> None:
    await create_topic(client, "t")
    raw_key, raw_value = b"\x00\x01key", bytes(range(256))
    key_b64 = base64.b64encode(raw_key).decode()
    value_b64 = base64.b64encode(raw_value).decode()
    await produce(
        client,
        "t",
        [
            {"key_b64": key_b64, "value_b64": value_b64},
            {"key": "plain", "value_b64": ""},
            {"key_b64": key_b64, "value": {"json": True}},
        ],
    )
    records = await read_all(client, "t")
    assert base64.b64decode(records[0]["value_b64"]) == raw_value
    assert records[0]["key_b64"] == key_b64
    assert "value" not in records[0] and "key" not in records[0]
    assert records[1]["key"] == "plain" and records[1]["value_b64"] == ""
    assert records[2]["key_b64"] == key_b64 and records[2]["value"] == {"json": True}


async def test_headers_read_back_as_written(client: TestClient) -> None:
    await create_topic(client, "t")
    headers = {"trace-id": "abc", "empty": "", "ünï": "✓"}
    await produce(client, "t", [{"value": 1, "headers": headers}, {"value": 2}])
    records = await read_all(client, "t")
    assert [r["headers"] for r in records] == [headers, {}]


async def test_a_given_timestamp_is_kept_and_a_missing_one_is_the_brokers_clock(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    start_ms = now_ms()
    await produce(client, "t", [{"value": 1, "timestamp": 1_000}, {"value": 2}, {"value": 3}])
    end_ms = now_ms()
    records = await read_all(client, "t")
    assert records[0]["timestamp"] == 1_000
    for r in records[1:]:
        assert start_ms <= r["timestamp"] <= end_ms


async def test_a_body_without_a_json_content_type_is_accepted(client: TestClient) -> None:
    """What plain `curl -d '{...}' URL` sends: application/x-www-form-urlencoded."""
    await create_topic(client, "t")
    body = orjson.dumps({"records": [{"value": "curl"}]})
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        resp = await client.post(
            "/v1/topics/t/records", data=body, headers={"Content-Type": content_type}
        )
        assert resp.status == 200, await resp.text()
    assert [r["value"] for r in await read_all(client, "t")] == ["curl", "curl"]


async def test_a_body_over_max_request_bytes_is_413_and_writes_nothing(make_client: Any) -> None:
    client = await make_client(max_request_bytes=1000)
    await create_topic(client, "t")
    await produce(client, "t", [{"value": "x" * 500}])
    for path in ("/v1/topics/t/records", "/v1/topics/t/partitions/0/records"):
        resp = await client.post(path, json={"records": [{"value": "x" * 2000}]})
        await assert_error(resp, 413, "REQUEST_TOO_LARGE")
    assert await high_watermark(client, "t") == 1


async def test_produce_metrics_count_records(client: TestClient) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": 1}, {"value": 2}])
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    [line] = [ln for ln in text.splitlines() if ln.startswith("raftka_produced_records_total")]
    assert float(line.split()[-1]) == 2
    assert "# TYPE raftka_produced_records_total counter" in text


async def test_acks_0_records_are_counted_in_the_metrics_once_written(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": 1}, {"value": 2}, {"value": 3}], acks="0")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ACKS0_DEADLINE_S
    while await produced_records_total(client) != 3:
        assert loop.time() < deadline, "acks=0 records were never counted"
        await asyncio.sleep(0.01)
    assert await high_watermark(client, "t") == 3


async def produced_records_total(client: TestClient) -> float:
    text = await (await client.get("/metrics")).text()
    [line] = [ln for ln in text.splitlines() if ln.startswith("raftka_produced_records_total")]
    return float(line.split()[-1])


async def test_concurrent_produces_get_distinct_contiguous_offsets(client: TestClient) -> None:
    await create_topic(client, "t")
    answers = await asyncio.gather(
        *(produce(client, "t", [{"value": [i, 0]}, {"value": [i, 1]}]) for i in range(20))
    )
    offsets = sorted(o["offset"] for answer in answers for o in answer)
    assert offsets == list(range(40))
    for i, answer in enumerate(answers):
        assert answer[1]["offset"] == answer[0]["offset"] + 1  # one request, one batch
        records = await fetch(client, "t", offset=answer[0]["offset"], max_records=2)
        assert [r["value"] for r in records["records"]] == [[i, 0], [i, 1]]
