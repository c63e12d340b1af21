"""Three brokers, each in its own namespace: they serve, survive a kill with their data,
and elect a new controller among the majority when the controller is cut off."""

import time
from collections.abc import Callable

import pytest

from raftka.api.launcher import Cluster, wait_for

pytestmark = pytest.mark.integration


def controller_seen_by(cluster: Cluster, broker_ids: list[int]) -> int | None:
    """The controller every given broker names, when they all name the same one."""
    seen = {cluster.cluster_view(b)["controller"] for b in broker_ids}
    return seen.pop() if len(seen) == 1 else None


def test_brokers_in_namespaces_serve_and_restart_with_their_data(
    netns_cluster: Callable[..., Cluster],
) -> None:
    cluster = netns_cluster(3)
    cluster.start_all()
    cluster.wait_ready()
    assert all(b.address.http_host.startswith("10.") for b in cluster.brokers.values())
    cluster.create_topic(1, "t", partitions=1, rf=3)
    cluster.produce(2, "t", 0, ["a", "b"])
    cluster.kill(3)
    cluster.start(3)  # same data directory: a restart, not a new broker
    cluster.wait_ready()
    wait_for(lambda: cluster.read_all(3, "t", 0) == ["a", "b"], "broker 3 serving its records")


def test_isolating_the_controller_elects_a_new_one_among_the_majority(
    netns_cluster: Callable[..., Cluster],
) -> None:
    cluster = netns_cluster(3)
    assert cluster.network is not None
    cluster.start_all()
    old = cluster.wait_ready()
    majority = [b for b in cluster.brokers if b != old]
    cut_at = time.monotonic()
    cluster.network.isolate(old)

    def new_controller() -> int | None:
        c = controller_seen_by(cluster, majority)
        return c if c in majority else None

    new = wait_for(new_controller, "a controller among the majority")
    print(f"new controller {new} {time.monotonic() - cut_at:.2f} s after the cut")
    # The old controller is fenced once its heartbeats stop committing.
    wait_for(
        lambda: not {b["id"]: b["alive"] for b in cluster.cluster_view(new)["brokers"]}[old],
        "the isolated broker fenced",
    )
    cluster.network.heal()
    cluster.wait_ready()
