"""`raftka bench http` end to end with tiny sizes: it runs, reports rates, leaves nothing.

A smoke test, not a performance test: it asserts that figures exist, never how high.
"""

import os
import subprocess
import sys
from pathlib import Path

import orjson

RAFTKA = [sys.executable, "-m", "raftka"]
TIMEOUT_S = 120  # a hang guard only; the run takes a few seconds
TINY = ["--rounds", "1", "--window", "0.3", "--warmup", "0.1", "--fetch-records", "20000"]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain `text` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        if text in line:
            found.append(line)
    return found


def test_bench_http_reports_produce_and_fetch_rates_and_leaves_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RAFTKA, "bench", "http", *TINY, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the servers' data dirs go
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    medians = report["medians"]
    assert medians["raftka"]["records_per_s"] > 0
    assert medians["baseline"]["records_per_s"] > 0
    assert medians["raftka_to_baseline"] > 0
    assert [f["connections"] for f in medians["fetch"]] == [1, 4]
    assert all(f["records_per_s"] > 0 and f["fetch_to_produce"] > 0 for f in medians["fetch"])
    (only_round,) = report["rounds"]
    assert all(f["records"] >= 20_000 for f in only_round["fetch"])
    assert report["cpu"]["note"]
    assert "round 1" in done.stderr

    assert list(tmp_path.iterdir()) == []
    if Path("/proc/self/cmdline").exists():
        assert processes_mentioning(str(tmp_path)) == []
