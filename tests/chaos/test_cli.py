"""`raftka chaos check DIR`: its verdict, its exit codes and the reports it rewrites."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from raftka.api.cli.main import cli
from raftka.chaos.history import write_history

from .story import Story


def run_dir(tmp_path: Path, story: Story) -> Path:
    write_history(tmp_path / "history.jsonl", story.history)
    return tmp_path


def test_a_clean_run_exits_0_and_rewrites_the_reports(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_bytes(orjson.dumps({"seed": 99}))
    directory = run_dir(tmp_path, Story().send(1, "a", 0, 0).final(0, (0, "a")))
    result = CliRunner().invoke(cli, ["chaos", "check", str(directory)])
    assert result.exit_code == 0, result.output
    assert "every invariant holds" in result.output and "lost" in result.output
    report = orjson.loads((directory / "report.json").read_bytes())
    assert report["seed"] == 99 and report["acked"] == 1 and report["ok"]
    assert (directory / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_a_violation_exits_1(tmp_path: Path) -> None:
    directory = run_dir(tmp_path, Story().send(1, "a", 0, 0).final(0))
    result = CliRunner().invoke(cli, ["chaos", "check", str(directory)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "INVARIANTS VIOLATED" in result.output


def test_an_unreadable_history_exits_2(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["chaos", "check", str(tmp_path)])
    assert missing.exit_code == 2
    (tmp_path / "history.jsonl").write_text('{"time": 0}\n')
    malformed = CliRunner().invoke(cli, ["chaos", "check", str(tmp_path)])
    assert malformed.exit_code == 2
    assert "line 1: missing 'process'" in malformed.output
