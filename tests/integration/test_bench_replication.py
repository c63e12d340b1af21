"""`raftka bench replication` end to end with tiny sizes: it runs every workload, reports
rates and latencies, leaves nothing.

A smoke test, not a performance test: it asserts that figures exist, never how high.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.integration.test_bench_http import processes_mentioning

RAFTKA = [sys.executable, "-m", "raftka"]
TIMEOUT_S = 180  # a hang guard only; the run takes a few seconds
TINY = ["--rounds", "1", "--window", "0.3", "--warmup", "0.1", "--records-per-request", "20"]
WORKLOADS = ["1 broker, RF=1, acks=1", "RF=1, acks=1", "RF=3, acks=1", "RF=3, acks=all"]


def test_bench_replication_reports_every_workload_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RAFTKA, "bench", "replication", *TINY, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the clusters' directories go
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    medians = report["medians"]
    assert [m["workload"] for m in medians] == WORKLOADS
    for m in medians:
        for figure in ("records_per_s", "p50_ms", "p99_ms", "to_rf1", "leader_cpu_us"):
            assert m[figure] > 0 and math.isfinite(m[figure]), (m["workload"], figure)
        assert m["p99_ms"] >= m["p50_ms"]
    (only_round,) = report["rounds"]
    assert [r["workload"] for r in only_round["results"]] == WORKLOADS
    assert report["cpu"]["note"]
    assert "round 1" in done.stderr

    assert list(tmp_path.iterdir()) == []
    if Path("/proc/self/cmdline").exists():
        assert processes_mentioning(str(tmp_path)) == []
