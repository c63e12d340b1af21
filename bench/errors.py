"""The benchmarks' one error: a server did not start or answered badly."""

from __future__ import annotations

from raftka.metadata.errors import RaftkaError


class BenchError(RaftkaError):
    """A server did not start or answered badly: the run cannot give figures."""

    code = "BENCH_FAILED"
