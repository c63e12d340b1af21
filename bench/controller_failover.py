"""`raftka bench controller-failover`: how long the cluster takes to recover from losing
its controller, measured on real broker processes.

Each run starts a fresh 3-broker cluster, creates a topic whose partitions are spread over
all brokers, SIGKILLs the controller and times, from the kill: a new controller known to
the survivors, and every partition the dead broker led served by a new leader.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.api.launcher import Cluster, make_cluster, wait_for

POLL_S = 0.01


@dataclass(frozen=True, slots=True)
class FailoverRun:
    new_controller_s: float
    partitions_re_led_s: float


def _moved(cluster: Cluster, survivor: int, victim: int, partitions: list[int]) -> bool:
    described = cluster.get(survivor, "/v1/topics/failover")["partitions"]
    return all(described[p]["leader"] not in (None, victim) for p in partitions)


def measure_once(root: Path, settings: dict[str, Any]) -> FailoverRun:
    cluster = make_cluster(root, voters=3, **settings)
    try:
        cluster.start_all()
        victim = cluster.wait_ready()
        cluster.create_topic(victim, "failover", partitions=6, rf=3)
        described = cluster.get(victim, "/v1/topics/failover")["partitions"]
        led = [p["partition"] for p in described if p["leader"] == victim]
        survivor = next(b for b in cluster.brokers if b != victim)
        killed_at = time.monotonic()
        cluster.kill(victim)

        def new_controller() -> bool:
            controller = cluster.cluster_view(survivor)["controller"]
            return controller is not None and controller != victim

        wait_for(new_controller, "a new controller")
        new_controller_s = time.monotonic() - killed_at
        wait_for(lambda: _moved(cluster, survivor, victim, led), "partitions re-led")
        return FailoverRun(new_controller_s, time.monotonic() - killed_at)
    finally:
        cluster.close()


def run_controller_failover(runs: int, settings: dict[str, Any]) -> list[FailoverRun]:
    results = []
    with tempfile.TemporaryDirectory(prefix="raftka-bench-") as tmp:
        for i in range(runs):
            results.append(measure_once(Path(tmp) / f"run-{i}", settings))
    return results


def summarize(results: list[FailoverRun]) -> dict[str, float]:
    return {
        "runs": len(results),
        "new_controller_median_s": statistics.median(r.new_controller_s for r in results),
        "new_controller_max_s": max(r.new_controller_s for r in results),
        "partitions_re_led_median_s": statistics.median(r.partitions_re_led_s for r in results),
        "partitions_re_led_max_s": max(r.partitions_re_led_s for r in results),
    }
