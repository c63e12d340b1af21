"""Clusters for the benchmarks: started by the one launcher (api/launcher.py) with the
broker's default settings, a topic made ready for load, and where the load goes.
Every broker is stopped by PID and the cluster's directory removed, whatever happens."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raftka.api.launcher import Cluster, make_cluster, wait_for
from raftka.bench.cpu import set_process_affinity
from raftka.bench.errors import BenchError
from raftka.bench.failover import default_settings
from raftka.bench.targets import Target, describe, leader_targets

MIN_INSYNC_REPLICAS = 2


@contextmanager
def running_cluster(
    root: Path, brokers: int, cpu: int | None, **settings: Any
) -> Iterator[tuple[Cluster, int]]:
    """A fresh cluster with the broker's default settings but `settings`; yields it and
    its controller's id; every broker is killed by PID and the directory removed after."""
    cluster = make_cluster(root, voters=brokers, **{**default_settings(), **settings})
    try:
        cluster.start_all()
        controller = cluster.wait_ready()
        if cpu is not None:
            for b in cluster.brokers.values():
                assert b.process is not None
                set_process_affinity(b.process.pid, {cpu})
        yield cluster, controller
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


def create_topic(cluster: Cluster, controller: int, name: str, partitions: int, rf: int) -> None:
    """Creates the topic and waits until every partition has a full ISR and takes an
    acks=all write."""
    config = {"min_insync_replicas": min(MIN_INSYNC_REPLICAS, rf)}
    resp = cluster.request(
        controller,
        "POST",
        "/v1/topics",
        {"name": name, "partitions": partitions, "replication_factor": rf, "config": config},
    )
    if resp.status != 201:
        raise BenchError(f"creating {name}: HTTP {resp.status} {resp.body}")

    def settled() -> bool:
        described = cluster.get(controller, f"/v1/topics/{name}")["partitions"]
        return all(p["leader"] is not None and len(p["isr"]) == rf for p in described)

    wait_for(settled, f"every partition of {name} led with a full ISR")
    for p in range(partitions):
        cluster.produce(controller, name, p, ["probe"], acks="all")


def url(cluster: Cluster, broker_id: int) -> str:
    return cluster.brokers[broker_id].url


def targets_of(
    cluster: Cluster, controller: int, topic: str, via: str | None = None
) -> list[Target]:
    views = asyncio.run(describe(url(cluster, controller), topic))
    return leader_targets(topic, views, via=via)
