"""The short chaos run of `make test`: `raftka chaos run` on three brokers, each in its
own network namespace, with all four fault kinds, as a user runs it.

It must exit 0 (every invariant held), inject every fault kind, acknowledge records and
lose none. Without root (no namespaces) only kill and pause can run, and the run says
so; as root (CI) all four must. Nothing here is timed: the run's length is its own
setting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from raftka.chaos.checker import check
from raftka.chaos.history import HISTORY_FILE, read_history
from raftka.chaos.netns import unavailable_reason

from .conftest import REQUIRE_NETNS

pytestmark = pytest.mark.integration

RUN_DEADLINE_S = 600


def test_a_short_chaos_run_with_every_fault_kind_holds_every_invariant(tmp_path: Path) -> None:
    network = REQUIRE_NETNS or unavailable_reason() is None
    kinds = ["kill", "pause", "partition", "latency"] if network else ["kill", "pause"]
    report_dir = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftka",
            "chaos",
            "run",
            "--brokers",
            "3",
            "--duration",
            "40",
            "--seed",
            "7",
            "--faults",
            ",".join(kinds),
            "--report",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-4000:]
    report = orjson.loads((report_dir / "report.json").read_bytes())
    assert report["ok"] and report["seed"] == 7
    assert {k for k, n in report["faults"].items() if n >= 1} == set(kinds)
    assert report["acked"] > 0
    assert (report["lost"], report["duplicated"], report["reordered"]) == (0, 0, 0)
    assert (report_dir / "report.html").read_text().count("<svg") >= 1
    # The saved history checks the same way again (`raftka chaos check`).
    assert check(read_history(report_dir / HISTORY_FILE)).ok
