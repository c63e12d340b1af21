"""A broker holds far more partition replicas than its open files limit allows descriptors:
its segment files share a bounded pool, so it produces, fetches, restarts and stays healthy
(issue 14: 27,000 replicas against a limit of 20,000 took brokers down for good)."""

import http.client
import re
from collections.abc import Callable

from raftka.api.launcher import Cluster, wait_for

OPEN_FILES_LIMIT = 256  # soft and hard: the broker cannot raise it
TOPICS = ("a", "b", "c")
PARTITIONS = 200  # 600 replicas, each an open file without the pool
CREATE_TIMEOUT_S = 120.0  # a 201 comes once every new log is open


def _metric(cluster: Cluster, name: str) -> float:
    address = cluster.brokers[1].address
    conn = http.client.HTTPConnection(address.http_host, address.http_port, timeout=10)
    try:
        conn.request("GET", "/metrics")  # Prometheus text, not JSON
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} is not in /metrics"
    return float(match.group(1))


def _produce_to_every_partition(cluster: Cluster, round_: int) -> None:
    for topic in TOPICS:
        records = [{"partition": p, "value": f"{topic}-{p}-{round_}"} for p in range(PARTITIONS)]
        resp = cluster.request(1, "POST", f"/v1/topics/{topic}/records", {"records": records})
        assert resp.status == 200, resp.body
        assert [o["offset"] for o in resp.body["offsets"]] == [round_] * PARTITIONS


def _read_every_partition(cluster: Cluster, rounds: int) -> None:
    for topic in TOPICS:
        for p in range(PARTITIONS):
            assert cluster.read_all(1, topic, p) == [f"{topic}-{p}-{r}" for r in range(rounds)]


def test_a_broker_with_more_replicas_than_open_files_works_and_restarts(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1, open_files_limit=OPEN_FILES_LIMIT)
    cluster.start_all()
    cluster.wait_ready()
    for topic in TOPICS:
        body = {"name": topic, "partitions": PARTITIONS, "replication_factor": 1}
        resp = cluster.request(1, "POST", "/v1/topics", body, timeout_s=CREATE_TIMEOUT_S)
        assert resp.status == 201, resp.body
    _produce_to_every_partition(cluster, 0)
    _read_every_partition(cluster, 1)
    pool_bound = _metric(cluster, "raftka_max_open_segment_files")
    assert pool_bound == OPEN_FILES_LIMIT // 2
    assert _metric(cluster, "raftka_open_segment_files") <= pool_bound
    assert _metric(cluster, "raftka_segment_file_evictions_total") > 0
    assert _metric(cluster, "process_max_fds") == OPEN_FILES_LIMIT

    assert cluster.stop(1) == 0
    cluster.start(1)
    cluster.wait_ready()
    replicas = len(TOPICS) * PARTITIONS
    wait_for(lambda: _metric(cluster, "raftka_partitions_led") == replicas, "every log open")
    _read_every_partition(cluster, 1)
    _produce_to_every_partition(cluster, 1)
    _read_every_partition(cluster, 2)
    assert cluster.request(1, "GET", "/healthz").status == 200

    log = cluster.brokers[1].log_path.read_text()
    limits = f"{OPEN_FILES_LIMIT}, raised to {OPEN_FILES_LIMIT} (hard limit {OPEN_FILES_LIMIT})"
    assert log.count(f"open files limit (RLIMIT_NOFILE): {limits}") == 2
    assert "Too many open files" not in log
