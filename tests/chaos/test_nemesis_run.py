"""The nemesis on three brokers in namespaces: run-time targets are the controller and a
partition's leader, every fault is recorded when it starts and when it is healed, and
the cluster serves again after a whole schedule."""

import time
from collections.abc import Callable
from typing import Any

import pytest

from raftka.api.launcher import Cluster, wait_for
from raftka.chaos.nemesis import FaultKind, FaultStep, Nemesis

pytestmark = pytest.mark.integration


def started(netns_cluster: Callable[..., Cluster]) -> tuple[Cluster, Nemesis, list[dict[str, Any]]]:
    cluster = netns_cluster(3)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "t", partitions=3, rf=3)
    history: list[dict[str, Any]] = []
    nemesis = Nemesis(
        cluster, record=history.append, clock=time.monotonic, network=cluster.network, topics=["t"]
    )
    return cluster, nemesis, history


def step(kind: FaultKind, variant: str, **fields: Any) -> FaultStep:
    return FaultStep(0, kind, variant, start_ms=0, active_ms=0, settle_ms=0, **fields)


def test_run_time_targets_are_the_controller_and_a_leader(
    netns_cluster: Callable[..., Cluster],
) -> None:
    cluster, nemesis, history = started(netns_cluster)
    controller = cluster.wait_ready()
    fault = nemesis.apply(step(FaultKind.KILL, "controller"))
    assert fault.targets == (controller,)
    assert not cluster.brokers[controller].running
    nemesis.heal(fault)  # a restart with its data
    cluster.wait_ready()

    leaders = {p["leader"] for p in cluster.get(1, "/v1/topics/t")["partitions"]}
    fault = nemesis.apply(step(FaultKind.PAUSE, "leader", pick=1))
    assert fault.targets[0] in leaders
    nemesis.heal(fault)

    fault = nemesis.apply(step(FaultKind.PARTITION, "isolate_controller"))
    assert cluster.network is not None
    assert len(cluster.network.cuts) == 2 and fault.groups[0] == fault.targets
    nemesis.heal(fault)
    assert cluster.network.cuts == frozenset()
    cluster.wait_ready()

    assert [(op["f"], op["value"]["fault"], op["value"]["variant"]) for op in history] == [
        ("start", "kill", "controller"),
        ("stop", "kill", "controller"),
        ("start", "pause", "leader"),
        ("stop", "pause", "leader"),
        ("start", "partition", "isolate_controller"),
        ("stop", "partition", "isolate_controller"),
    ]
    assert all(op["process"] == "nemesis" and op["type"] == "info" for op in history)
    assert [op["time"] for op in history] == sorted(op["time"] for op in history)


def test_a_whole_schedule_runs_every_kind_and_the_cluster_serves_after(
    netns_cluster: Callable[..., Cluster],
) -> None:
    cluster, nemesis, history = started(netns_cluster)
    cluster.produce(1, "t", 0, ["before"])
    schedule, warnings = nemesis.plan(seed=7, duration_s=1, kinds=[str(k) for k in FaultKind])
    for warning in warnings:
        print(warning)  # latency is dropped on kernels without netem; the rest must run
    kinds = {s.kind for s in schedule}
    assert {FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION} <= kinds
    applied = nemesis.run(schedule)
    assert [f.step for f in applied] == schedule and all(f.healed for f in applied)
    starts = [op for op in history if op["f"] == "start"]
    stops = [op for op in history if op["f"] == "stop"]
    assert [op["value"] for op in starts] == [op["value"] for op in stops]
    assert {op["value"]["fault"] for op in starts} == {str(k) for k in kinds}

    cluster.wait_ready()
    cluster.produce(2, "t", 0, ["after"])
    wait_for(lambda: cluster.read_all(3, "t", 0) == ["before", "after"], "records after chaos")
