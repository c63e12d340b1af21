"""One three-broker cluster with Kafka listeners, shared by this folder's tests (each
test uses its own topics), and helpers to talk to it as Kafka clients do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from raftka.api.launcher import Cluster, make_cluster

CLIENT_TIMEOUT_S = 60.0


@pytest.fixture(scope="package")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path_factory.mktemp("kafka"), 3, kafka=True)
    cluster.start_all()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


def bootstrap(cluster: Cluster) -> str:
    return ",".join(str(b.kafka) for b in cluster.config.brokers)


def kcat(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    """Runs kcat against the cluster; fails the test with kcat's stderr if it fails."""
    done = subprocess.run(
        ["kcat", "-b", bootstrap(cluster), *args],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        errors="replace",  # binary values print as they are
        timeout=CLIENT_TIMEOUT_S,
    )
    assert done.returncode == 0, f"kcat {' '.join(args)}: {done.stderr}"
    return done.stdout


def http_records(cluster: Cluster, topic: str, partitions: int) -> list[dict[str, Any]]:
    """Every record of the topic, read over HTTP, in (partition, offset) order."""
    out = []
    for p in range(partitions):
        answer = cluster.get(1, f"/v1/topics/{topic}/partitions/{p}/records?offset=0")
        out += [{**r, "partition": p} for r in answer["records"]]
    return out
