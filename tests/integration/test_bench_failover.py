"""`raftka bench failover` end to end, one kill with short session settings: it runs, reports
sane figures, leaves nothing.

A smoke test, not a performance test: it asserts that figures exist, never how low.
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
TINY = [
    "--runs",
    "1",
    "--cases",
    "kill",
    "--session-timeout-ms",
    "3000",
    "--heartbeat-interval-ms",
    "500",
]


def test_bench_failover_kill_reports_recovery_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RAFTKA, "bench", "failover", *TINY, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the clusters' directories go
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["settings"]["broker_session_timeout_ms"] == 3000
    (run,) = report["runs"]
    assert (run["case"], run["role"]) == ("kill", "controller")
    for figure in (run["first_ack_s"], run["unavailable_s"], run["fenced_s"]):
        assert figure > 0 and math.isfinite(figure)
    assert run["fenced"] is True and run["acked"] >= 1
    (summary,) = report["summary"]
    assert summary["runs"] == 1 and summary["unavailable_median_s"] == run["unavailable_s"]
    assert "run 1 kill controller" in done.stderr

    assert list(tmp_path.iterdir()) == []
    if Path("/proc/self/cmdline").exists():
        assert processes_mentioning(str(tmp_path)) == []
