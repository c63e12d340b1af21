"""Topic administration: POST/GET/DELETE /v1/topics on one broker."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from raftka.api.http.context import BROKER_KEY
from raftka.metadata.commands import RegisterBroker
from tests.api.support import assert_error, body_of, create_topic

PARTITION_FIELDS = {
    "partition",
    "leader",
    "leader_epoch",
    "replicas",
    "isr",
    "log_start_offset",
    "high_watermark",
}


async def test_create_defaults_to_one_partition_one_replica_and_answers_the_description(
    client: TestClient,
) -> None:
    created = await create_topic(client, "orders")
    assert created["name"] == "orders"
    assert created["config"]["min_insync_replicas"] == 1
    assert [set(p) >= PARTITION_FIELDS for p in created["partitions"]] == [True]
    [p] = created["partitions"]
    assert p["partition"] == 0
    assert p["leader"] == 1
    assert isinstance(p["leader_epoch"], int) and p["leader_epoch"] >= 0
    assert p["replicas"] == [1]
    assert p["isr"] == [1]
    assert (p["log_start_offset"], p["high_watermark"]) == (0, 0)
    described = await body_of(await client.get("/v1/topics/orders"))
    assert described == created


async def test_create_takes_partitions_and_config(client: TestClient) -> None:
    config = {
        "min_insync_replicas": 1,
        "retention_ms": 60_000,
        "retention_bytes": 1_000_000,
        "segment_bytes": 1_048_576,
    }
    created = await create_topic(
        client, "configured", partitions=4, replication_factor=1, config=config
    )
    assert [p["partition"] for p in created["partitions"]] == [0, 1, 2, 3]
    assert {k: created["config"][k] for k in config} == config


async def test_retention_minus_one_means_unlimited(client: TestClient) -> None:
    created = await create_topic(
        client, "forever", config={"retention_ms": -1, "retention_bytes": -1}
    )
    assert created["config"]["retention_ms"] is None
    assert created["config"]["retention_bytes"] is None


async def test_creating_an_existing_topic_is_409_topic_exists(client: TestClient) -> None:
    await create_topic(client, "twice")
    resp = await client.post("/v1/topics", json={"name": "twice", "partitions": 2})
    await assert_error(resp, 409, "TOPIC_EXISTS")
    described = await body_of(await client.get("/v1/topics/twice"))
    assert len(described["partitions"]) == 1


async def test_list_names_every_topic_sorted(client: TestClient) -> None:
    assert await body_of(await client.get("/v1/topics")) == {"topics": []}
    for name in ("b", "a", "c.d_e-1"):
        await create_topic(client, name)
    assert await body_of(await client.get("/v1/topics")) == {"topics": ["a", "b", "c.d_e-1"]}


async def test_delete_answers_204_then_the_topic_is_unknown(client: TestClient) -> None:
    await create_topic(client, "gone")
    resp = await client.delete("/v1/topics/gone")
    assert resp.status == 204
    await assert_error(await client.get("/v1/topics/gone"), 404, "UNKNOWN_TOPIC")
    await assert_error(await client.delete("/v1/topics/gone"), 404, "UNKNOWN_TOPIC")
    assert await body_of(await client.get("/v1/topics")) == {"topics": []}
    resp = await client.get("/v1/topics/gone/partitions/0/records", params={"offset": "0"})
    await assert_error(resp, 404, "UNKNOWN_TOPIC")


async def test_a_deleted_topic_can_be_created_again_empty(client: TestClient) -> None:
    await create_topic(client, "again")
    resp = await client.post("/v1/topics/again/records", json={"records": [{"value": 1}]})
    assert resp.status == 200
    assert (await client.delete("/v1/topics/again")).status == 204
    created = await create_topic(client, "again")
    assert created["partitions"][0]["high_watermark"] == 0


async def test_describing_an_unknown_topic_is_404(client: TestClient) -> None:
    await assert_error(await client.get("/v1/topics/nothing"), 404, "UNKNOWN_TOPIC")


@pytest.mark.parametrize(
    "name",
    ["a", "A-z_0.9", "x" * 249, ".hidden", "..."],
    ids=["one-char", "every-class", "249-chars", "leading-dot", "three-dots"],
)
async def test_valid_topic_names_are_accepted(client: TestClient, name: str) -> None:
    created = await create_topic(client, name)
    assert created["name"] == name


@pytest.mark.parametrize("rf", [2, 3])
async def test_more_replicas_than_brokers_is_400_invalid_replication_factor(
    client: TestClient, rf: int
) -> None:
    resp = await client.post("/v1/topics", json={"name": "t", "replication_factor": rf})
    await assert_error(resp, 400, "INVALID_REPLICATION_FACTOR")
    assert await body_of(await client.get("/v1/topics")) == {"topics": []}


async def test_a_topic_too_large_for_one_metadata_entry_is_400_and_not_created(
    client: TestClient,
) -> None:
    # 10,000 partitions (the route's maximum) x 80 replicas compresses to ~73,000
    # characters: more than one metadata log entry holds (commands.MAX_COMMAND_TEXT_CHARS).
    broker = client.app[BROKER_KEY]
    await asyncio.gather(
        *(
            broker.submit(RegisterBroker(b, f"http://127.0.0.1:{20_000 + b}", "inc", False))
            for b in range(2, 81)
        )
    )
    body = {"name": "huge", "partitions": 10_000, "replication_factor": 80}
    error = await assert_error(await client.post("/v1/topics", json=body), 400, "INVALID_REQUEST")
    assert "10000 partitions x 80 replicas" in error["message"]
    assert "does not fit one metadata log entry" in error["message"]
    assert await body_of(await client.get("/v1/topics")) == {"topics": []}
