"""A broker's work per metadata change is proportional to the change, not to the cluster
(counted, not timed), and the controller never fences itself, however busy its loop."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient

from raftka.api.http.app import BROKER_KEY
from raftka.api.http.forward import FORWARDED_HEADER
from tests.api.conftest import MakeClient
from tests.api.support import create_topic, produce

BIG_PARTITIONS = 300
SMALL_PARTITIONS = 2
ROUNDS = 3
# A change may cost the topic it names plus a few lookups, never the big topic.
VISITS_PER_PARTITION = 4
# Short enough that the stall below outlasts a session, long enough for a loaded CI box.
SESSION_TIMEOUT_MS = 1500
HEARTBEAT_INTERVAL_MS = 300


async def test_creating_writing_and_deleting_a_small_topic_next_to_a_big_one_visits_only_it(
    make_client: MakeClient,
) -> None:
    client: TestClient = await make_client()
    broker = client.server.app[BROKER_KEY]
    await create_topic(client, "big", partitions=BIG_PARTITIONS)
    await produce(client, "big", [{"value": 0}], partition=0)
    for i in range(ROUNDS):
        before = broker.replicas.partitions_visited
        await create_topic(client, f"small-{i}", partitions=SMALL_PARTITIONS)
        await produce(client, f"small-{i}", [{"value": i}], partition=SMALL_PARTITIONS - 1)
        resp = await client.delete(f"/v1/topics/small-{i}")
        assert resp.status == 204
        while broker.replicas.get(f"small-{i}", 0) is not None:  # the delete's reconcile
            await asyncio.sleep(0.01)
        visited = broker.replicas.partitions_visited - before
        assert visited <= VISITS_PER_PARTITION * SMALL_PARTITIONS, f"round {i}: {visited}"
    assert broker.replicas.get("big", BIG_PARTITIONS - 1) is not None


async def test_the_controller_does_not_fence_itself_when_its_loop_stalls_past_a_session(
    make_client: MakeClient,
) -> None:
    """Seen next to a 9,000-partition topic: the controller's event loop, busy with metadata
    work, saw its own heartbeats too late and fenced its own broker."""
    client: TestClient = await make_client(
        broker_session_timeout_ms=SESSION_TIMEOUT_MS,
        broker_heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
    )
    broker = client.server.app[BROKER_KEY]
    await create_topic(client, "t", partitions=4)
    assert broker.is_controller
    time.sleep(2 * SESSION_TIMEOUT_MS / 1000)  # the loop stalls: no heartbeat is sent
    await broker.controller.tick()
    assert not broker.state.brokers[broker.broker_id].fenced
    assert [p["leader"] for p in await _partitions(client, "t")] == [1, 1, 1, 1]


async def _partitions(client: TestClient, topic: str) -> list[dict[str, object]]:
    resp = await client.get(f"/v1/topics/{topic}")
    assert resp.status == 200
    partitions: list[dict[str, object]] = (await resp.json())["partitions"]
    return partitions


async def test_a_forwarded_write_to_a_topic_not_yet_applied_here_waits_for_it(
    client: TestClient,
) -> None:
    """The broker that created a topic forwards its first write to the leader, which may not
    have applied the creation yet: UNKNOWN_TOPIC would be wrong there."""
    headers = {FORWARDED_HEADER: "1"}
    write = asyncio.ensure_future(
        client.post(
            "/v1/topics/late/partitions/0/records",
            json={"records": [{"value": 1}]},
            headers=headers,
        )
    )
    await asyncio.sleep(0.2)
    assert not write.done()
    await create_topic(client, "late", partitions=1)
    resp = await write
    assert resp.status == 200, await resp.text()
    unforwarded = await client.post(
        "/v1/topics/never/partitions/0/records", json={"records": [{"value": 1}]}
    )
    assert unforwarded.status == 404, "a request from a client is answered at once"
