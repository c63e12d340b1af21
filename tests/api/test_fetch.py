"""Fetch and offsets: limits, the readable range, long-polling, lookups by timestamp."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from raftka.api.http.context import BROKER_KEY
from raftka.api.http.routes.fetch import LARGE_ANSWER_BYTES
from tests.api.support import assert_error, body_of, create_topic, fetch, produce, read_all

LONG_POLL_MS = 10_000


async def test_fetch_reads_back_what_was_produced_with_offsets_and_watermarks(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"key": f"k{i}", "value": i} for i in range(5)])
    page = await fetch(client, "t", offset=0)
    assert [r["offset"] for r in page["records"]] == [0, 1, 2, 3, 4]
    assert [(r["key"], r["value"]) for r in page["records"]] == [(f"k{i}", i) for i in range(5)]
    assert all(
        set(r) == {"offset", "timestamp", "key", "value", "headers"} for r in page["records"]
    )
    assert (page["next_offset"], page["high_watermark"], page["log_start_offset"]) == (5, 5, 0)
    middle = await fetch(client, "t", offset=3)
    assert [r["offset"] for r in middle["records"]] == [3, 4]


async def test_fetch_at_the_end_is_empty_and_points_at_the_end(client: TestClient) -> None:
    await create_topic(client, "t")
    empty = await fetch(client, "t", offset=0)
    assert empty == {"records": [], "next_offset": 0, "high_watermark": 0, "log_start_offset": 0}
    await produce(client, "t", [{"value": 1}, {"value": 2}])
    at_end = await fetch(client, "t", offset=2)
    assert at_end == {"records": [], "next_offset": 2, "high_watermark": 2, "log_start_offset": 0}


@pytest.mark.parametrize(
    ("max_records", "offsets"), [(1, [0]), (3, [0, 1, 2]), (100, [0, 1, 2, 3])]
)
async def test_max_records_caps_the_answer(
    client: TestClient, max_records: int, offsets: list[int]
) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": i} for i in range(4)])
    page = await fetch(client, "t", offset=0, max_records=max_records)
    assert [r["offset"] for r in page["records"]] == offsets
    assert page["next_offset"] == offsets[-1] + 1


async def test_max_bytes_caps_the_answer_but_returns_at_least_one_record(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    big = "x" * 5_000
    await produce(client, "t", [{"value": big} for _ in range(4)])
    one = await fetch(client, "t", offset=0, max_bytes=10)
    assert [r["offset"] for r in one["records"]] == [0]
    assert one["records"][0]["value"] == big
    assert one["next_offset"] == 1
    some = await fetch(client, "t", offset=1, max_bytes=11_000)
    assert 1 <= len(some["records"]) <= 2
    assert some["next_offset"] == 1 + len(some["records"])
    everything = await fetch(client, "t", offset=0, max_bytes=1_000_000)
    assert len(everything["records"]) == 4


async def test_an_answer_past_the_large_answer_size_is_the_same_json(client: TestClient) -> None:
    """Answers with more than LARGE_ANSWER_BYTES of records are written in pieces."""
    await create_topic(client, "t")
    values = [f"{i:04d}" + "x" * 2_000 for i in range(80)]
    for start in range(0, len(values), 20):
        await produce(client, "t", [{"value": v} for v in values[start : start + 20]])
    answers = []
    for max_bytes in (LARGE_ANSWER_BYTES // 2, 4 * LARGE_ANSWER_BYTES):
        resp = await client.get(
            "/v1/topics/t/partitions/0/records",
            params={"offset": "0", "max_records": "1000", "max_bytes": str(max_bytes)},
        )
        assert resp.status == 200
        assert resp.content_type == "application/json"
        raw = await resp.read()
        assert int(resp.headers["Content-Length"]) == len(raw)
        answers.append(orjson.loads(raw))
    small, large = answers
    assert len(small["records"]) < len(values) == len(large["records"])
    assert [r["value"] for r in large["records"]] == values
    assert large["records"][: len(small["records"])] == small["records"]
    assert (large["next_offset"], large["high_watermark"]) == (len(values), len(values))


async def test_paging_with_next_offset_reads_every_record_once(client: TestClient) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": i} for i in range(25)])
    seen: list[int] = []
    offset = 0
    while offset < 25:
        page = await fetch(client, "t", offset=offset, max_records=7)
        seen.extend(r["value"] for r in page["records"])
        offset = page["next_offset"]
    assert seen == list(range(25))


async def test_a_long_poll_returns_the_record_as_soon_as_it_is_produced(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    poll = asyncio.ensure_future(fetch(client, "t", offset=0, max_wait_ms=LONG_POLL_MS))
    await _until_parked(client, poll)
    await produce(client, "t", [{"value": "wake up"}])
    page = await asyncio.wait_for(poll, LONG_POLL_MS / 1000 / 2)
    assert [r["value"] for r in page["records"]] == ["wake up"]
    assert page["next_offset"] == 1


async def _until_parked(client: TestClient, poll: asyncio.Future[Any]) -> None:
    """Waits until the fetch waits on the partition: acting earlier would prove nothing."""
    while _waiters(client) == 0:
        assert not poll.done(), "the long-poll answered before anything happened"
        await asyncio.sleep(0.01)


def _waiters(client: TestClient) -> int:
    """How many fetches wait on the partition (the replica's high-watermark event)."""
    replica = client.app[BROKER_KEY].replicas.get("t", 0)
    if replica is None:
        return 0  # its log is still opening
    return len(getattr(replica._hw_moved, "_waiters", ()))


async def test_a_long_poll_with_nothing_to_read_answers_empty_after_the_wait(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": 1}])
    page = await fetch(client, "t", offset=1, max_wait_ms=50)
    assert page == {"records": [], "next_offset": 1, "high_watermark": 1, "log_start_offset": 0}


async def test_a_long_poll_with_records_waiting_answers_them_at_once(client: TestClient) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": 1}])
    page = await asyncio.wait_for(fetch(client, "t", offset=0, max_wait_ms=LONG_POLL_MS), 5)
    assert [r["value"] for r in page["records"]] == [1]


async def test_offsets_earliest_latest_and_by_timestamp(client: TestClient) -> None:
    await create_topic(client, "t")
    stamps = [1_000, 2_000, 2_000, 3_000]
    await produce(client, "t", [{"value": i, "timestamp": ts} for i, ts in enumerate(stamps)])

    async def lookup(timestamp: str | None) -> object:
        params = {"timestamp": timestamp} if timestamp is not None else {}
        resp = await client.get("/v1/topics/t/partitions/0/offsets", params=params)
        assert resp.status == 200, await resp.text()
        return (await body_of(resp))["offset"]

    assert await lookup("earliest") == 0
    assert await lookup("latest") == 4
    assert await lookup(None) == 4
    cases = {"0": 0, "1000": 0, "1001": 1, "2000": 1, "2500": 3, "3000": 3, "3001": None}
    assert {ts: await lookup(ts) for ts in cases} == cases


async def test_offsets_of_an_empty_partition(client: TestClient) -> None:
    await create_topic(client, "t")
    for timestamp, offset in (("earliest", 0), ("latest", 0), ("0", None)):
        resp = await client.get(
            "/v1/topics/t/partitions/0/offsets", params={"timestamp": timestamp}
        )
        assert await body_of(resp) == {"offset": offset}


async def test_fetching_past_the_end_is_416_and_names_the_readable_range(
    client: TestClient,
) -> None:
    await create_topic(client, "t")
    await produce(client, "t", [{"value": 1}, {"value": 2}])
    resp = await client.get("/v1/topics/t/partitions/0/records", params={"offset": "3"})
    error = await assert_error(resp, 416, "OFFSET_OUT_OF_RANGE")
    assert (error["log_start_offset"], error["high_watermark"]) == (0, 2)
    assert len(await read_all(client, "t")) == 2


async def test_a_long_poll_on_a_topic_deleted_meanwhile_wakes_and_answers_404(
    client: TestClient,
) -> None:
    # Deleting the topic wakes the waiting fetch (its wait is far longer than the
    # deadline below), which answers 404, not a 500 from reading the closed log.
    await create_topic(client, "t")
    poll = asyncio.ensure_future(
        client.get(
            "/v1/topics/t/partitions/0/records", params={"offset": "0", "max_wait_ms": "30000"}
        )
    )
    await _until_parked(client, poll)
    assert (await client.delete("/v1/topics/t")).status == 204
    resp = await asyncio.wait_for(poll, LONG_POLL_MS / 1000)
    await assert_error(resp, 404, "UNKNOWN_TOPIC")
