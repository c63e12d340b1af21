"""`python -m raftka.bench.partitions`: what a broker holding many partition replicas
costs to start, in time, memory and open files.

One broker (its own metadata voter) gets topics of `TOPIC_PARTITIONS` partitions at
replication factor 1 until it holds `--replicas` replicas, is stopped cleanly and
started again; the restart is what is measured: seconds until every replica leads again,
the broker's resident memory and its open descriptors then. Then one record is produced to
and read back from a sample of partitions. The broker runs through api/launcher.py and is
stopped by PID, whatever happens. This module only measures: it never changes how a broker
runs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from raftka.api.launcher import Cluster, make_cluster

TOPIC_PARTITIONS = 10_000  # the API's largest topic
SAMPLE_PARTITIONS = 200  # produced to and read back after the restart
START_DEADLINE_S = 1800.0
# A /metrics scrape lists every partition's gauges: scraping often loads the broker measured.
POLL_S = 2.0
_LED = re.compile(rb"^raftka_partitions_led (\S+)$", re.MULTILINE)


def _partitions_led(cluster: Cluster) -> int:
    address = cluster.brokers[1].address
    conn = http.client.HTTPConnection(address.http_host, address.http_port, timeout=60)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
    finally:
        conn.close()
    match = _LED.search(body)
    return int(float(match.group(1))) if match else 0


def _proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _wait_all_led(cluster: Cluster, replicas: int) -> float:
    started = time.monotonic()
    while _partitions_led(cluster) < replicas:
        if time.monotonic() - started > START_DEADLINE_S:
            raise AssertionError(f"{replicas} partitions not led after {START_DEADLINE_S} s")
        time.sleep(POLL_S)
    return time.monotonic() - started


def run(replicas: int, open_files_limit: int | None, root: Path) -> dict[str, float]:
    cluster = make_cluster(root, 1, open_files_limit=open_files_limit)
    try:
        cluster.start(1)
        cluster.wait_ready()
        topics: list[tuple[str, int]] = []
        created = time.monotonic()
        left = replicas
        while left > 0:
            count = min(left, TOPIC_PARTITIONS)
            name = f"p{len(topics)}"
            # The broker answers once the new partitions' logs are open: minutes, not 10 s.
            resp = cluster.request(
                1,
                "POST",
                "/v1/topics",
                {"name": name, "partitions": count, "replication_factor": 1},
                timeout_s=START_DEADLINE_S,
            )
            assert resp.status == 201, resp.body
            topics.append((name, count))
            left -= count
        _wait_all_led(cluster, replicas)
        created_s = time.monotonic() - created
        stop_started = time.monotonic()
        process = cluster.brokers[1].process
        assert process is not None
        process.terminate()  # a clean stop fsyncs and closes every log: minutes, not 60 s
        assert process.wait(START_DEADLINE_S) == 0, cluster.log_tail(1)
        stop_s = time.monotonic() - stop_started
        started = time.monotonic()
        cluster.start(1)
        cluster.wait_ready()
        _wait_all_led(cluster, replicas)
        restart_s = time.monotonic() - started
        process = cluster.brokers[1].process
        assert process is not None
        status = _proc_status(process.pid)
        open_fds = len(os.listdir(f"/proc/{process.pid}/fd"))
        rng = random.Random(1)
        sample = [
            (name, rng.randrange(count)) for name, count in rng.choices(topics, k=SAMPLE_PARTITIONS)
        ]
        sample_started = time.monotonic()
        for name, partition in sample:
            offsets = cluster.produce(1, name, partition, [f"{name}-{partition}"])
            assert f"{name}-{partition}" in cluster.read_all(1, name, partition)[: offsets[0] + 1]
        sample_s = time.monotonic() - sample_started
        return {
            "replicas": replicas,
            "create_and_open_s": round(created_s, 1),
            "clean_stop_s": round(stop_s, 1),
            "restart_until_all_led_s": round(restart_s, 1),
            "rss_mib": round(int(status["VmRSS"].split()[0]) / 1024, 1),
            "peak_rss_mib": round(int(status["VmHWM"].split()[0]) / 1024, 1),
            "open_fds": open_fds,
            "sample_produce_fetch_ms": round(1000 * sample_s / SAMPLE_PARTITIONS, 2),
        }
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=30_000)
    parser.add_argument("--open-files-limit", type=int, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="raftka-bench-partitions-"))
    try:
        print(run(args.replicas, args.open_files_limit, root / "cluster"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
