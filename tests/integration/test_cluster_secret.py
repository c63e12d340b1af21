"""A cluster with a secret and users, on real broker processes: its brokers still
replicate, forward and hold sessions with each other, while the Raft port refuses an
unsealed pickled frame (and runs nothing), the internal routes refuse anyone without the
secret, and the client and CLI get in with a token only."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raftka.api.acl import Acl, Operation, User
from raftka.api.launcher import Cluster, http_request, make_cluster, wait_for
from raftka.api.settings import Security
from raftka.api.tokens import hash_token
from raftka.client import Admin, Consumer, Producer, Unauthenticated
from raftka.client import NotAuthorized as ClientNotAuthorized  # noqa: I001

SECRET = "integration-test-secret-0123456789"
TOKEN = "operator-token-0123456789"
APP_TOKEN = "app-token-0123456789abc"
USERS = (
    User("operator", hash_token(TOKEN), (Acl(frozenset(Operation), topics=("*",), groups=("*",)),)),
    User(
        "app", hash_token(APP_TOKEN), (Acl(frozenset({Operation.PRODUCE}), topics=("orders.*",)),)
    ),
)
INTERNAL_ROUTES = [
    ("POST", "/internal/replica/fetch"),
    ("POST", "/internal/brokers/1/session"),
    ("GET", "/internal/topics/t/offsets"),
    ("GET", "/internal/metadata"),
]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = make_cluster(
        tmp_path_factory.mktemp("secured"), 3, security=Security(cluster_secret=SECRET, users=USERS)
    )
    cluster.headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        cluster.start_all()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


class _MakeDirectory:
    """Unpickling this calls os.mkdir(path): what an attacker would send, harmlessly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return os.mkdir, (str(self.path),)


def _send_raft_frame(address: str, payload: object) -> None:
    """pysyncobj's frame (length, zlib of a pickle) on a fresh connection; returns when the
    node has closed the connection or kept it a while (then it accepted the frame)."""
    host, port = address.rsplit(":", 1)
    data = zlib.compress(pickle.dumps(payload), 3)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(struct.pack("i", len(data)) + data)
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            pass


def _frame_sent(address: str, payload: object) -> bool:
    try:
        _send_raft_frame(address, payload)
    except ConnectionRefusedError:
        return False
    return True


def test_a_secured_cluster_replicates_and_forwards(secured: Cluster) -> None:
    secured.create_topic(1, "orders", partitions=3, rf=3)
    for partition in range(3):  # broker 1 leads at most some of them: the rest are forwarded
        secured.produce(1, "orders", partition, [f"v{partition}"])
    for partition in range(3):
        assert secured.read_all(2, "orders", partition) == [f"v{partition}"]
    topic = secured.get(3, "/v1/topics/orders")
    assert all(sorted(p["isr"]) == [1, 2, 3] for p in topic["partitions"])


@pytest.mark.parametrize(("method", "path"), INTERNAL_ROUTES)
def test_an_internal_route_without_the_secret_is_403(
    secured: Cluster, method: str, path: str
) -> None:
    address = secured.brokers[1].address
    resp = http_request(address.http_host, address.http_port, method, path, {})
    assert resp.status == 403
    assert resp.body["error"]["code"] == "NOT_AUTHORIZED"
    forged = {"X-Raftka-Broker-Auth": "1700000000:" + "0" * 64, "X-Raftka-Forwarded": "1"}
    resp = http_request(address.http_host, address.http_port, method, path, {}, headers=forged)
    assert resp.status == 403


def test_the_operator_with_the_secret_reaches_the_internal_routes(secured: Cluster) -> None:
    assert secured.get(1, "/internal/metadata")["broker_id"] == 1


def test_an_unsealed_pickled_frame_to_the_raft_port_runs_nothing(
    secured: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    for b in secured.brokers.values():
        assert b.address.raft is not None
        _send_raft_frame(b.address.raft, _MakeDirectory(marker))
    secured.wait_ready()  # the quorum is unharmed
    secured.create_topic(2, "after-the-frame", partitions=1, rf=3)
    # By now an unsealed node would have run it (the control below sees it within moments).
    assert not marker.exists()


def test_the_client_needs_a_token_and_may_do_what_its_acls_say(secured: Cluster) -> None:
    urls = ",".join(b.url for b in secured.brokers.values())
    with Admin(urls, token=TOKEN) as admin:
        admin.create_topic("orders.client", partitions=3, replication_factor=2)
    with Producer(urls, token=APP_TOKEN, acks="all") as producer:
        # Three partitions, led by different brokers: some writes are forwarded.
        offsets = [producer.send("orders.client", i, partition=i % 3).result() for i in range(6)]
    assert sorted(offsets) == sorted((p, o) for p in range(3) for o in range(2))
    # A group member joins through whichever broker it asks first: the join is checked
    # there, then forwarded (signed) to the group's coordinator.
    with Consumer(urls, group="billing", topics=["orders.client"], token=TOKEN) as consumer:
        seen: list[int] = []
        while len(seen) < 6:
            seen += [r.value for r in consumer.poll(5.0)]
    assert sorted(seen) == list(range(6))
    with pytest.raises(Unauthenticated), Admin(urls, retry_for_s=0) as anonymous:
        anonymous.list_topics()
    with pytest.raises(ClientNotAuthorized), Admin(urls, token=APP_TOKEN, retry_for_s=0) as app:
        app.delete_topic("orders.client")


def test_the_cli_takes_a_token_and_lists_the_acls(secured: Cluster) -> None:
    def raftka(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RAFTKA_BOOTSTRAP": secured.brokers[1].url}
        env.pop("RAFTKA_TOKEN", None)
        if token is not None:
            env["RAFTKA_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "raftka", *args], capture_output=True, text=True, env=env
        )

    secured.create_topic(1, "cli-topic", partitions=1, rf=1)
    listed = raftka("topic", "list", token=TOKEN)
    assert listed.returncode == 0 and "cli-topic" in listed.stdout.split(), listed.stderr
    refused = raftka("topic", "list")
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    acls = raftka("acl", "list", "--config", str(secured.config_path), "--json")
    assert acls.returncode == 0, acls.stderr
    assert '"name":"app"' in acls.stdout and "token" not in acls.stdout


def test_without_a_secret_the_same_frame_would_run(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    """The control: the frame above is a real attack on an unsealed Raft port."""
    open_cluster = cluster_factory(1)
    open_cluster.start_all()
    open_cluster.wait_ready()
    marker = tmp_path / "pwned"
    raft = open_cluster.brokers[1].address.raft
    assert raft is not None
    # A node may bind its Raft port after it is ready: retry a refused connection.
    wait_for(lambda: _frame_sent(raft, _MakeDirectory(marker)), "the unsealed Raft port to accept")
    wait_for(marker.exists, "the pickled frame to run on the unsealed node")
