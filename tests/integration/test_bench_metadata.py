"""`raftka bench metadata` end to end at a tiny size: it runs, reports every figure, leaves
nothing.

A smoke test, not a performance test: it asserts that figures exist, never how low.
"""

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.integration.test_bench_http import processes_mentioning

RAFTKA = [sys.executable, "-m", "raftka"]
TIMEOUT_S = 180  # a hang guard only; the run takes seconds
ROUNDS = 3


def test_bench_metadata_reports_rounds_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RAFTKA, "bench", "metadata", "--partitions", "12", "--rounds", str(ROUNDS), "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the cluster's directory goes
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert (report["partitions"], report["rounds"]) == (12, ROUNDS)
    assert report["rounds_s"] > 0
    for figure in ("create_ms", "first_write_ms", "delete_ms"):
        assert 0 < report[figure]["median"] <= report[figure]["max"]
    assert report["controller_changes"] >= 0 and report["fenced"] >= 0
    assert "3 rounds" in done.stderr

    assert list(tmp_path.iterdir()) == []
    if Path("/proc/self/cmdline").exists():
        assert processes_mentioning(str(tmp_path)) == []
