"""`raftka bench produce|consume|e2e|suite` end to end with tiny sizes: the tools run, count
exactly what they sent and read, report every figure, and leave nothing behind.

Smoke tests, not performance tests: they assert counts and sane values, never how fast.
"""

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from raftka.api.cli.main import cli
from raftka.api.launcher import Cluster
from raftka.bench.report import SECTION_END, SECTION_START
from tests.integration.test_bench_http import processes_mentioning

RAFTKA = [sys.executable, "-m", "raftka"]
TIMEOUT_S = 180  # a hang guard only; each run takes seconds
TINY_SUITE = [
    "--quick",
    "--window",
    "0.3",
    "--warmup",
    "0.1",
    "--consume-records",
    "5000",
    "--e2e-rate",
    "500",
    "--e2e-duration",
    "0.5",
]


def bench(*args: str, env: dict[str, str] | None = None) -> Any:
    """In this process (no interpreter start per command)."""
    result = CliRunner().invoke(cli, ["bench", *args, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)


def bench_process(*args: str, env: dict[str, str]) -> Any:
    """In a process of its own, with `env` (TMPDIR must be read afresh)."""
    done = subprocess.run(
        [*RAFTKA, "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def assert_latency(lat: dict[str, float], samples: int) -> None:
    assert lat["samples"] == samples
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["p999_ms"] <= lat["max_ms"]
    assert math.isfinite(lat["max_ms"])


def test_produce_consume_and_e2e_count_exactly_what_they_sent(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(1)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "perf", partitions=2, rf=1)
    url = cluster.brokers[1].url
    common = ["--topic", "perf", "--bootstrap", url]

    produced = bench(
        "produce", *common, "--records", "2001", "--batch", "100", "--concurrency", "3"
    )
    assert produced["records"] == 2001
    assert produced["requests"] == 21  # 20 full batches and one of a single record
    assert produced["errors"] == 0
    assert produced["records_per_s"] > 0 and produced["mb_per_s"] > 0
    assert_latency(produced["latency"], samples=21)

    consumed = bench("consume", *common, "--max-bytes", "4096", "--concurrency", "4")
    assert consumed["records"] == consumed["expected"] == 2001
    assert consumed["fetches"] > 2001 * 100 // 4096  # 4 KiB per fetch: many fetches
    assert consumed["records_per_s"] > 0 and consumed["bytes"] > 2001 * 100

    e2e = bench("e2e", *common, "--rate", "400", "--duration", "0.5", "--acks", "1")
    assert e2e["sent"] == e2e["received"] == 200
    assert e2e["sent_per_s"] > 0
    assert_latency(e2e["latency"], samples=200)
    assert_latency(e2e["ack_latency"], samples=200)

    again = bench("consume", "--topic", "perf", env={"RAFTKA_BOOTSTRAP": url})
    assert again["records"] == again["expected"] == 2001 + 200


def test_suite_reports_every_workload_writes_the_docs_section_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"  # where the suite's servers keep their files
    work.mkdir()
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nkept\n{SECTION_START}\nold\n{SECTION_END}\nkept too\n")

    report = bench_process("suite", *TINY_SUITE, "--docs", str(docs), env={"TMPDIR": str(work)})

    (only_round,) = report["rounds"]
    for figure in ("baseline_rf1", "produce_rf1", "produce_rf3", "produce_fsync_always"):
        assert only_round[figure] > 0, figure
    assert only_round["consumed"] >= 5000
    assert only_round["e2e"]["samples"] == 250  # 500 records/s for 0.5 s
    rows = report["rows"]
    assert len(rows) == 6
    for row in rows:
        assert row["value"] > 0 and math.isfinite(row["value"]), row
        assert row["goal"] and isinstance(row["met"], bool)
    assert [r["ratio"] is None for r in rows] == [False] * 4 + [True, False]
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"]

    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n") and text.endswith("kept too\n")
    assert "old" not in text and text.count(SECTION_START) == 1
    assert "| workload | figure | compared with | ratio | goal | met |" in text
    assert "Machine: " in text

    assert list(work.iterdir()) == []
    if Path("/proc/self/cmdline").exists():
        assert processes_mentioning(str(work)) == []
