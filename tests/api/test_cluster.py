"""Cluster endpoints of one broker: /v1/cluster, /healthz, /metrics, POST /v1/producers."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.api.support import body_of


async def test_cluster_names_the_broker_as_controller_alive_and_voting(client: TestClient) -> None:
    resp = await client.get("/v1/cluster")
    assert resp.status == 200
    cluster = await body_of(resp)
    assert cluster["cluster_id"] == "test"
    assert cluster["controller"] == 1
    [broker] = cluster["brokers"]
    assert broker["id"] == 1
    assert broker["alive"] is True
    assert broker["raft_voter"] is True
    assert broker["url"].startswith("http://127.0.0.1:")


async def test_healthz_is_200_on_a_ready_broker(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_metrics_are_prometheus_text(client: TestClient) -> None:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    lines = (await resp.text()).splitlines()
    assert any(line.startswith("# TYPE ") for line in lines)
    samples = [line for line in lines if line and not line.startswith("#")]
    assert samples
    for line in samples:
        float(line.rsplit(" ", 1)[1])  # every sample ends in a number


async def test_producer_ids_are_distinct_and_start_at_epoch_0(client: TestClient) -> None:
    answers = [await body_of(await client.post("/v1/producers")) for _ in range(5)]
    assert all(set(a) == {"id", "epoch"} for a in answers)
    assert all(a["epoch"] == 0 and isinstance(a["id"], int) and a["id"] >= 0 for a in answers)
    assert len({a["id"] for a in answers}) == 5
