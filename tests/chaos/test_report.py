"""report.json and report.html from a crafted history with two fault windows."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from raftka.chaos.checker import check
from raftka.chaos.history import NEMESIS, RUN_INFO, RUNNER, OpType
from raftka.chaos.report import percentile, timeline, verdict_table, write_report

from .story import Story


def crafted() -> Story:
    """Sends over three seconds, a pause of broker 2 from 1.0 s to 2.0 s, a kill of broker 3
    from 2.5 s that never stops, and a lost send."""
    s = Story()
    s.complete(RUNNER, OpType.INFO, RUN_INFO, {"seed": 42})
    for i in range(30):
        s.clock = i * 0.1
        if i == 10:
            s.complete(NEMESIS, OpType.INFO, "start", {"fault": "pause", "target": [2]})
        if i == 20:
            s.complete(NEMESIS, OpType.INFO, "stop", {"fault": "pause", "target": [2]})
        if i == 25:
            s.complete(NEMESIS, OpType.INFO, "start", {"fault": "kill", "target": [3]})
        s.send(1, f"v{i}", 0, i)
    s.final(0, *[(o, f"v{o}") for o in range(29)])
    return s


def test_report_json_has_the_verdict_counts_and_faults(tmp_path: Path) -> None:
    history = crafted().history
    report = write_report(tmp_path, history, check(history))
    saved = orjson.loads((tmp_path / "report.json").read_bytes())
    assert saved == report
    assert saved["seed"] == 42
    assert saved["faults"] == {"kill": 1, "pause": 1}
    assert (saved["acked"], saved["lost"], saved["duplicated"], saved["reordered"]) == (30, 1, 0, 0)
    assert saved["ok"] is False
    assert saved["invariants"]["lost"]["ok"] is False
    assert saved["invariants"]["duplicated"] == {"ok": True, "count": 0, "details": []}
    assert saved["ops"]["send"] == {"invoke": 30, "ok": 30}
    assert saved["ops"]["final-read"] == {"ok": 1}
    assert saved["duration_s"] == history.end_time


def test_report_html_is_self_contained_with_charts_and_shaded_faults(tmp_path: Path) -> None:
    history = crafted().history
    write_report(tmp_path, history, check(history), seed=7, duration_s=3.5)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 2
    assert len(re.findall(r'<rect class="fault" data-fault="pause"', page)) == 2  # both charts
    assert len(re.findall(r'<rect class="fault" data-fault="kill"', page)) == 2
    assert 'class="throughput throughput-send"' in page
    assert 'class="latency latency-p99"' in page
    assert "INVARIANTS VIOLATED" in page and "v29" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in page


def test_the_timeline_counts_oks_per_second_and_latency_from_invoke() -> None:
    buckets = timeline(crafted().history)
    assert [b.ok_by_f.get("send", 0) for b in buckets] == [10, 10, 10]
    assert all(b.percentile_ms(50) is not None for b in buckets)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert percentile([], 50) is None


def test_the_cli_table_escapes_details(tmp_path: Path) -> None:
    history = crafted().history
    report = write_report(tmp_path, history, check(history))
    table = verdict_table(report)
    assert table.row_count == len(report["invariants"])
