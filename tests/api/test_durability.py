"""Records survive every fsync policy and a broker restart on the same data directory."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from raftka.api.broker.broker import Broker
from raftka.api.http.app import create_app
from raftka.api.http.context import BROKER_KEY
from tests.api.conftest import MakeClient, start_ready
from tests.api.support import body_of, create_topic, produce, read_all

RECORDS: list[dict[str, Any]] = [
    {"key": "a", "value": {"n": 1}, "headers": {"h": "1"}, "timestamp": 1_000},
    {"key": None, "value": [1, 2, 3], "timestamp": 2_000},
    {"key_b64": base64.b64encode(b"\x00").decode(), "value_b64": "AAEC", "timestamp": 3_000},
]


def as_read(record: dict[str, Any], offset: int) -> dict[str, Any]:
    out = {"offset": offset, **record}
    out.setdefault("headers", {})
    if "key_b64" not in out:
        out.setdefault("key", None)
    return out


@pytest.mark.parametrize("fsync", ["always", "batch", "never"])
async def test_every_fsync_policy_produces_and_reads_back(
    make_client: MakeClient, fsync: str
) -> None:
    client = await make_client(fsync=fsync)
    await create_topic(client, "t")
    for acks in ("1", "all"):
        await produce(client, "t", RECORDS, acks=acks)
    expected = [as_read(r, i) for i, r in enumerate(RECORDS * 2)]
    assert await read_all(client, "t") == expected


async def test_a_restarted_broker_keeps_topics_and_records(
    make_client: MakeClient, aiohttp_client: Any
) -> None:
    client = await make_client(fsync="always")
    await create_topic(client, "kept", partitions=2)
    await produce(client, "kept", RECORDS, partition=0)
    await produce(client, "kept", [{"value": i} for i in range(100)], partition=1)
    old = client.app[BROKER_KEY]
    await old.stop()

    broker = Broker(old.config, old.broker_id)
    restarted: TestClient = await aiohttp_client(create_app(broker))
    try:
        await start_ready(broker)
        assert await body_of(await restarted.get("/v1/topics")) == {"topics": ["kept"]}
        assert await read_all(restarted, "kept", 0) == [
            as_read(r, i) for i, r in enumerate(RECORDS)
        ]
        assert [r["value"] for r in await read_all(restarted, "kept", 1)] == list(range(100))
        # The log goes on where it stopped.
        assert await produce(restarted, "kept", [{"value": "next"}], partition=0) == [
            {"partition": 0, "offset": len(RECORDS)}
        ]
    finally:
        await broker.stop()
