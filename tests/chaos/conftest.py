"""Chaos tests: real namespaces need root, which CI has.

Without root the network tests skip and say why. As root (CI is root) a missing
network fails them instead, so CI can never skip them silently; RAFTKA_REQUIRE_NETNS=1
asks for the same anywhere.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from raftka.api.launcher import Cluster, make_cluster
from raftka.chaos.netns import NetworkLab, NetworkUnavailable, unavailable_reason

REQUIRE_NETNS = os.environ.get("RAFTKA_REQUIRE_NETNS") == "1" or os.geteuid() == 0


def _network_or_skip() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if REQUIRE_NETNS:
        pytest.fail(
            f"the chaos network is required here (root or RAFTKA_REQUIRE_NETNS=1) but {reason}"
        )
    pytest.skip(reason)


@pytest.fixture
def lab_factory() -> Iterator[Callable[[list[int]], NetworkLab]]:
    """Builds labs that are torn down after the test, passed or failed."""
    _network_or_skip()
    made: list[NetworkLab] = []

    def make(node_ids: list[int]) -> NetworkLab:
        lab = NetworkLab(node_ids)
        made.append(lab)
        try:
            lab.start()
        except NetworkUnavailable as exc:
            if REQUIRE_NETNS:
                raise
            pytest.skip(exc.reason)
        return lab

    yield make
    for lab in made:
        lab.close()
        assert lab.leftovers() == [], f"lab {lab.name} left {lab.leftovers()}"


@pytest.fixture
def netns_cluster(
    tmp_path: Path, lab_factory: Callable[[list[int]], NetworkLab]
) -> Iterator[Callable[..., Cluster]]:
    """A cluster of `voters` brokers, each in its own namespace; brokers stop before the
    network goes (the lab fixture closes after this one)."""
    made: list[Cluster] = []

    def make(voters: int, **settings: Any) -> Cluster:
        lab = lab_factory(list(range(1, voters + 1)))
        cluster = make_cluster(tmp_path / f"cluster-{len(made)}", voters, network=lab, **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
