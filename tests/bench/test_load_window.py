"""A timed produce run against a real server (the bare baseline app, in-process): the
counted window is what the result and the WindowWatch both see."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp.test_utils import TestServer

from raftka.bench.baseline import AppendOnlyFile, create_app
from raftka.bench.load import ProduceSpec, produce
from raftka.bench.targets import Endpoint, Target


class RecordingWatch:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def started(self) -> None:
        self.calls.append("started")

    def ended(self) -> None:
        self.calls.append("ended")


async def test_a_timed_run_tells_the_watch_when_its_window_starts_and_ends(
    tmp_path: Path,
) -> None:
    fd = os.open(tmp_path / "values.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    server = TestServer(create_app(AppendOnlyFile(fd)), host="127.0.0.1")
    await server.start_server()
    try:
        target = Target(Endpoint("127.0.0.1", server.port), "t", 0)
        spec = ProduceSpec(records=None, batch=5, concurrency=2, window_s=0.2, warmup_s=0.05)
        watch = RecordingWatch()
        result = await produce([target], spec, watch=watch)
    finally:
        await server.close()
        os.close(fd)
    assert watch.calls == ["started", "ended"]
    assert result.requests > 0 and result.records == 5 * result.requests
    assert result.elapsed_s >= spec.window_s
