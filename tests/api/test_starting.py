"""A broker whose metadata is not loaded yet answers a retriable 503, never a wrong 404."""

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from raftka.api.broker.broker import Broker
from raftka.api.http.app import create_app
from tests.api.conftest import single_broker_config
from tests.api.support import assert_error


@pytest.fixture
async def starting_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> TestClient:
    # The HTTP server is up (as in api/http/server.py) but broker.start() has not run yet.
    return await aiohttp_client(create_app(Broker(single_broker_config(tmp_path), 1)))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/topics"),
        ("GET", "/v1/topics/t"),
        ("POST", "/v1/topics"),
        ("POST", "/v1/topics/t/records"),
        ("GET", "/v1/topics/t/partitions/0/records?offset=0"),
        ("POST", "/v1/producers"),
    ],
)
async def test_requests_before_the_metadata_is_loaded_get_a_retriable_503(
    starting_client: TestClient, method: str, path: str
) -> None:
    resp = await starting_client.request(method, path, data=b'{"name": "t"}')
    await assert_error(resp, 503, "LEADER_NOT_AVAILABLE")
    assert resp.headers["Retry-After"] == "1"


async def test_health_cluster_and_metrics_answer_while_starting(
    starting_client: TestClient,
) -> None:
    assert (await starting_client.get("/healthz")).status == 503
    cluster = await starting_client.get("/v1/cluster")
    assert cluster.status == 200
    assert (await cluster.json())["controller"] is None
    assert (await starting_client.get("/metrics")).status == 200
