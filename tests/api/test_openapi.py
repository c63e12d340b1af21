"""/openapi.json describes exactly the routes the app serves."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from raftka.api.broker.broker import Broker
from raftka.api.http.app import create_app
from tests.api.conftest import single_broker_config

METHODS = {"get", "post", "put", "delete", "patch"}


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    app: web.Application = create_app(Broker(single_broker_config(tmp_path), 1))
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method.lower() in METHODS
    }


async def test_every_route_is_described_and_every_described_route_served(
    client: TestClient, tmp_path: Path
) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    described = {(m, path) for path, ops in doc["paths"].items() for m in ops if m in METHODS}
    assert described == _served(tmp_path)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "default" in op["responses"], (method, path)  # errors: the contract's shape
