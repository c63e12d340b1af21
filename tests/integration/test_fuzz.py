"""schemathesis fuzzes a live broker from its /openapi.json: every answer must match the
description (status, content type, headers, body schema), with no 500, crash or hang.
Bounded in `make test`; `make test-deep` (HYPOTHESIS_PROFILE=deep) runs many more cases
and the stateful phase. What it found is in docs/security.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.api.launcher import Cluster, make_cluster

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "unsupported_method",
    )
)
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
MAX_EXAMPLES = 300 if DEEP else 8
PHASES = "examples,coverage,fuzzing,stateful" if DEEP else "examples,coverage,fuzzing"
MAX_TIME_S = 900 if DEEP else 30


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path_factory.mktemp("fuzz"), 1)
    try:
        cluster.start_all()
        cluster.wait_ready()
        cluster.create_topic(1, "0", partitions=2, rf=1)  # a name the generator tries first
        cluster.produce(1, "0", 0, ["a", "b"])
        yield cluster
    finally:
        cluster.close()


def test_schemathesis_finds_nothing_against_a_live_broker(broker: Cluster, tmp_path: Path) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is in the test extras"
    command = [
        st,
        "run",
        broker.brokers[1].url + "/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        PHASES,
        "--max-time",
        str(MAX_TIME_S),
        "--exclude-path-regex",
        "^/internal/",  # broker-to-broker: 403 to anyone else (test_cluster_secret.py)
        "--generation-deterministic",
        "--request-timeout",
        "40",
        # One worker: hypothesis parses lambda sources with ast, which CPython 3.11 can
        # break when two threads do it at once ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--no-color",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_TIME_S + 120, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
