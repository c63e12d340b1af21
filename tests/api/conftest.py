"""An in-process broker (a real one-voter Raft quorum, real logs in tmp_path) behind
aiohttp's test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from raftka.api.broker.broker import Broker
from raftka.api.http.app import create_app
from raftka.api.ports import free_ports
from raftka.api.settings import BrokerAddress, ClusterConfig, Settings

# One voter elects itself after one election timeout: keep it short in tests.
FAST_RAFT = {
    "raft_election_timeout_min_ms": 100,
    "raft_election_timeout_max_ms": 200,
    "raft_heartbeat_interval_ms": 20,
}
READY_DEADLINE_S = 30.0


def single_broker_config(data_dir: Path, **settings: Any) -> ClusterConfig:
    http, raft = free_ports(2)
    return ClusterConfig(
        cluster_id="test",
        data_dir=data_dir,
        brokers=(BrokerAddress(1, f"127.0.0.1:{http}", f"127.0.0.1:{raft}"),),
        settings=Settings(**{**FAST_RAFT, **settings}),
    )


async def start_ready(broker: Broker) -> None:
    """Starts a broker and waits until it serves; fails (not hangs) past the deadline."""
    try:
        await asyncio.wait_for(broker.start(), READY_DEADLINE_S)
    except TimeoutError:
        raise AssertionError("the broker's metadata quorum did not start") from None
    await wait_ready(broker)


async def wait_ready(broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_DEADLINE_S
    while not (broker.ready and broker.has_lease):
        assert loop.time() < deadline, "the broker did not become ready"
        await asyncio.sleep(0.01)


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> AsyncIterator[MakeClient]:
    """`await make_client(fsync="always", ...)` -> a test client of a ready broker."""
    brokers: list[Broker] = []

    async def make(**settings: Any) -> TestClient:
        config = single_broker_config(tmp_path / f"cluster-{len(brokers)}", **settings)
        broker = Broker(config, 1)
        brokers.append(broker)
        client = await aiohttp_client(create_app(broker))
        await start_ready(broker)
        return client

    yield make
    for broker in brokers:
        await broker.stop()


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestClient]:
    """One broker for a whole module (its tests run on the module's event loop:
    `pytestmark = pytest.mark.asyncio(loop_scope="module")`). For tables of refused
    requests, which must leave nothing behind anyway; saves a broker start per case."""
    broker = Broker(single_broker_config(tmp_path_factory.mktemp("shared")), 1)
    client = TestClient(TestServer(create_app(broker)))
    await client.start_server()
    try:
        await start_ready(broker)
        yield client
    finally:
        await client.close()
        await broker.stop()
