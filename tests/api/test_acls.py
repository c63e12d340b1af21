"""Tokens and ACLs, route by route, on one broker with three users: each request is
allowed or refused exactly as the config says (allowed: anything but 401/403)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from raftka.api.acl import Acl, Operation, User
from raftka.api.broker.broker import Broker
from raftka.api.http.app import create_app
from raftka.api.settings import Security
from raftka.api.tokens import hash_token
from tests.api.conftest import single_broker_config, start_ready
from tests.api.support import assert_error, body_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKENS = {
    "app": "app-token-0123456789",
    "reader": "reader-token-0123456",
    "admin": "admin-token-01234567",
}
USERS = (
    User(
        "app",
        hash_token(TOKENS["app"]),
        (
            Acl(
                frozenset({Operation.PRODUCE, Operation.CONSUME}),
                topics=("orders.*",),
                groups=("billing",),
            ),
        ),
    ),
    User(
        "reader",
        hash_token(TOKENS["reader"]),
        (Acl(frozenset({Operation.CONSUME}), topics=("logs",), groups=("g-*",)),),
    ),
    User("admin", hash_token(TOKENS["admin"]), (Acl(frozenset({Operation.ADMIN}), topics=("*",)),)),
)
TOPICS = ("orders.eu", "logs", "secret")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestClient]:
    security = Security(cluster_secret="acl-test-secret-0123456789", users=USERS)
    broker = Broker(single_broker_config(tmp_path_factory.mktemp("acl"), security), 1)
    client = TestClient(TestServer(create_app(broker)))
    await client.start_server()
    try:
        await start_ready(broker)
        for name in TOPICS:
            resp = await client.post("/v1/topics", json={"name": name}, headers=_auth("admin"))
            assert resp.status == 201, await resp.text()
        yield client
    finally:
        await client.close()
        await broker.stop()


def _auth(user: str | None) -> dict[str, str]:
    return {} if user is None else {"Authorization": f"Bearer {TOKENS[user]}"}


RECORDS = {"records": [{"value": 1}]}
JOIN = {"topics": ["orders.eu"]}
# (method, path, body, the users allowed). Every route of the API; anonymous requests
# are refused (401) everywhere but /healthz.
ROUTES: list[tuple[str, str, Any, set[str]]] = [
    ("GET", "/v1/cluster", None, {"app", "reader", "admin"}),
    ("GET", "/metrics", None, {"admin"}),
    ("POST", "/v1/producers", {}, {"app", "reader", "admin"}),
    ("POST", "/v1/topics", {"name": "orders.new"}, {"admin"}),
    ("GET", "/v1/topics", None, {"app", "reader", "admin"}),
    ("GET", "/v1/topics/orders.eu", None, {"app", "admin"}),
    ("GET", "/v1/topics/secret", None, {"admin"}),
    ("DELETE", "/v1/topics/nonexistent", None, {"admin"}),
    ("POST", "/v1/topics/orders.eu/records", RECORDS, {"app"}),
    ("POST", "/v1/topics/orders.eu/partitions/0/records", RECORDS, {"app"}),
    ("POST", "/v1/topics/logs/records", RECORDS, set()),
    ("GET", "/v1/topics/logs/partitions/0/records?offset=0", None, {"reader"}),
    ("GET", "/v1/topics/orders.eu/partitions/0/records?offset=0", None, {"app"}),
    ("GET", "/v1/topics/logs/partitions/0/offsets", None, {"reader"}),
    ("GET", "/v1/groups", None, {"app", "reader", "admin"}),
    ("POST", "/v1/groups/billing/members", JOIN, {"app"}),
    ("POST", "/v1/groups/g-1/members", {"topics": ["logs"]}, {"reader"}),
    ("POST", "/v1/groups/g-1/members", JOIN, set()),  # the group yes, the topic no
    ("POST", "/v1/groups/billing/members/m/heartbeat", {"generation": 1}, {"app"}),
    ("DELETE", "/v1/groups/billing/members/m", None, {"app"}),
    ("GET", "/v1/groups/billing/members/m/records", None, {"app"}),
    (
        "POST",
        "/v1/groups/billing/offsets",
        {"member_id": "m", "generation": 1, "offsets": []},
        {"app"},
    ),
    ("GET", "/v1/groups/billing/offsets", None, {"app"}),
    ("GET", "/v1/groups/billing", None, {"app", "admin"}),
    ("GET", "/internal/metadata", None, set()),  # brokers only, whatever the user
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES)
@pytest.mark.parametrize("user", ["app", "reader", "admin"])
async def test_each_route_allows_exactly_the_users_its_acls_name(
    api: TestClient, method: str, path: str, body: Any, allowed: set[str], user: str
) -> None:
    resp = await api.request(method, path, json=body, headers=_auth(user))
    if user in allowed:
        assert resp.status not in (401, 403), await resp.text()
    else:
        error = await assert_error(resp, 403, "NOT_AUTHORIZED")
        assert user in error["message"] or "brokers" in error["message"]


@pytest.mark.parametrize(("method", "path", "body"), sorted({r[:2] + (None,) for r in ROUTES}))
@pytest.mark.parametrize("token", [None, "Bearer wrong-token-0123456789", "Basic abc", "Bearer "])
async def test_without_a_valid_token_every_route_is_401(
    api: TestClient, method: str, path: str, body: Any, token: str | None
) -> None:
    headers = {} if token is None else {"Authorization": token}
    resp = await api.request(method, path, json=body, headers=headers)
    if path.startswith("/internal/"):
        await assert_error(resp, 403, "NOT_AUTHORIZED")
        return
    await assert_error(resp, 401, "UNAUTHENTICATED")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_healthz_needs_no_token(api: TestClient) -> None:
    assert (await api.get("/healthz")).status == 200


@pytest.mark.parametrize(
    ("user", "topics", "groups"),
    [
        ("app", ["orders.eu"], ["billing"]),
        ("reader", ["logs"], []),
        ("admin", list(TOPICS), ["billing"]),
    ],
)
async def test_metadata_reads_show_only_what_the_user_may_see(
    api: TestClient, user: str, topics: list[str], groups: list[str]
) -> None:
    await api.post("/v1/groups/billing/members", json=JOIN, headers=_auth("app"))
    listed = await body_of(await api.get("/v1/topics", headers=_auth(user)))
    created_by_the_route_table = {"orders.new"}
    assert set(listed["topics"]) - created_by_the_route_table == set(topics)
    seen = await body_of(await api.get("/v1/groups", headers=_auth(user)))
    assert set(seen["groups"]) - {"g-1"} == set(groups)  # g-1: the route table's, maybe
