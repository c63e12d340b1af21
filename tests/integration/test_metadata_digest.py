"""GET /internal/metadata: every broker's digest of its applied metadata state, so tests
and the chaos checker can compare brokers."""

from collections.abc import Callable
from typing import Any

from raftka.api.launcher import Cluster, wait_for

BROKERS = (1, 2, 3)


def _digests(cluster: Cluster, broker_ids: tuple[int, ...]) -> dict[int, Any]:
    return {b: cluster.get(b, "/internal/metadata") for b in broker_ids}


def _converged(cluster: Cluster, broker_ids: tuple[int, ...]) -> str | None:
    views = _digests(cluster, broker_ids)
    digests = {v["digest"] for v in views.values()}
    return digests.pop() if len(digests) == 1 else None


def test_brokers_converge_to_one_digest_and_a_paused_one_falls_behind(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(3)
    cluster.start_all()
    cluster.wait_ready()
    for name in ("a", "b", "c"):
        cluster.create_topic(1 + ord(name) % 3, name, 3, 3)
    assert cluster.request(2, "DELETE", "/v1/topics/b").status == 204
    assert cluster.request(3, "POST", "/v1/producers").status == 200
    before = wait_for(lambda: _converged(cluster, BROKERS), "the brokers to agree")
    view = cluster.get(1, "/internal/metadata")
    assert view["applied_index"] <= view["commit_index"]
    assert len(view["digest"]) == 32

    cluster.pause(3)
    try:
        cluster.create_topic(1, "while-3-sleeps", 1, 3)
        after = wait_for(lambda: _converged(cluster, (1, 2)), "brokers 1 and 2 to agree")
        assert after != before  # broker 3 still holds `before`: it applied nothing since
    finally:
        cluster.resume(3)
    wait_for(lambda: _converged(cluster, BROKERS), "broker 3 to catch up")
