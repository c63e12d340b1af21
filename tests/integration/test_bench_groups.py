"""`raftka bench groups` end to end with tiny sizes: members commit, a killed member's
partitions are consumed again, the report has every figure, nothing is left behind.

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
TIMEOUT_S = 240  # a hang guard only; the run takes about 20 s
TINY = ["--members", "4", "--partitions", "8", "--duration", "1.5", "--runs", "1"]


def test_bench_groups_commits_and_rebalances_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RAFTKA, "bench", "groups", *TINY, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the clusters' directories go
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["options"]["members"] == 4 and report["machine"]["cpus"] >= 1

    (commits,) = report["commit_runs"]
    assert commits["members"] == 4 and commits["commits"] > 0
    assert commits["coordinator"] in (1, 2, 3)
    for figure in ("commits_per_s", "p50_ms", "p99_ms", "commits_per_entry", "driver_busy"):
        assert commits[figure] > 0 and math.isfinite(commits[figure]), figure
    assert commits["p99_ms"] >= commits["p50_ms"]
    assert sorted(commits["broker_busy"]) == ["1", "2", "3"]

    (rebalance,) = report["rebalance_runs"]
    assert rebalance["victim_partitions"]
    assert sorted(rebalance["per_partition_s"]) == sorted(
        str(p) for p in rebalance["victim_partitions"]
    )
    # The expiry is seen by polling the group, so it may be noted just after a survivor
    # already read a hand-off partition: both are positive, neither bounds the other.
    assert rebalance["expiry_s"] > 0 and rebalance["total_s"] > 0
    assert rebalance["total_s"] == max(rebalance["per_partition_s"].values())

    medians = report["medians"]
    assert medians["commits_per_s"] == commits["commits_per_s"]
    assert medians["rebalance_total_s"] == rebalance["total_s"]
    assert "run 1:" in done.stderr

    assert list(tmp_path.iterdir()) == []
    if Path("/proc/self/cmdline").exists():
        assert processes_mentioning(str(tmp_path)) == []


def test_bench_groups_prints_readable_tables(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RAFTKA, "bench", "groups", *TINY],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "offset commits: 4 members, 8 partitions" in done.stdout
    assert "commits/s" in done.stdout and "median" in done.stdout
    assert "rebalance: 3 members on 6 partitions" in done.stdout
