"""Integration tests run real broker processes on 127.0.0.1."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from raftka.api.launcher import Cluster, make_cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(voters: int, observers: int = 0, **settings: Any) -> Cluster:
        cluster = make_cluster(tmp_path / f"cluster-{len(made)}", voters, observers, **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
