"""The suite's verdict table and the docs section it replaces."""

import dataclasses

import pytest

from raftka.bench.figures import Latency
from raftka.bench.report import (
    SECTION_END,
    SECTION_START,
    RoundFigures,
    format_rounds,
    format_table,
    replace_section,
    verdict,
)


def figures(round: int, *, rf1: float, baseline: float, p99_ms: float = 20.0) -> RoundFigures:
    return RoundFigures(
        round=round,
        order=("baseline", "1 broker"),
        produce_rf1=rf1,
        baseline_rf1=baseline,
        produce_rf3=0.25 * baseline,
        baseline_rf3=baseline,
        produce_fsync_always=0.8 * baseline,
        baseline_fsync_always=2 * baseline,
        consume_rf1=10 * rf1,
        consumed=1000,
        direct=100.0,
        forwarded=40.0,
        e2e=Latency(100, 5.0, p99_ms, 60.0, 70.0),
        e2e_ack=Latency(100, 4.0, 10.0, 11.0, 12.0),
        e2e_sent_per_s=10_000.0,
        errors=0,
    )


def test_rows_follow_the_issue_order_with_goals_and_verdicts() -> None:
    rows = verdict([figures(1, rf1=70.0, baseline=100.0)], 8, 32, 10_000)
    assert [(r.goal, r.met) for r in rows] == [
        (">= 0.6", True),  # 0.70
        (">= 0.3", False),  # 0.25
        (">= 0.3", True),  # 0.8 / 2 = 0.40
        (">= 5", True),  # 10
        ("p99 <= 50 ms", True),
        (">= 0.5", False),  # 0.40
    ]
    assert rows[0].ratio == pytest.approx(0.7)
    assert rows[2].ratio == pytest.approx(0.4)
    assert rows[4].ratio is None and rows[4].value == 20.0


def test_a_ratio_is_the_median_of_each_rounds_own_ratio_not_a_ratio_of_medians() -> None:
    rounds = [
        figures(1, rf1=50.0, baseline=100.0),  # 0.50
        figures(2, rf1=140.0, baseline=200.0),  # 0.70
        figures(3, rf1=180.0, baseline=300.0),  # 0.60
    ]
    (rf1, *_) = verdict(rounds, 8, 32, 10_000)
    assert rf1.ratio == pytest.approx(0.6)
    assert rf1.value == 140.0  # the figure itself: its own median


def test_the_e2e_goal_is_a_p99_bound() -> None:
    rows = verdict([figures(1, rf1=70.0, baseline=100.0, p99_ms=50.1)], 8, 32, 10_000)
    assert not rows[4].met


def test_tables_have_one_line_per_row_and_per_round() -> None:
    rounds = [figures(1, rf1=70.0, baseline=100.0), figures(2, rf1=60.0, baseline=100.0)]
    table = format_table(verdict(rounds, 8, 32, 10_000))
    assert len(table.splitlines()) == 2 + 6
    assert "| 0.65 | >= 0.6 | yes |" in table
    assert len(format_rounds(rounds).splitlines()) == 2 + 2


def test_replace_section_swaps_only_the_text_between_the_markers() -> None:
    document = f"# B\n\nbefore\n{SECTION_START}\nold\n{SECTION_END}\nafter\n"
    replaced = replace_section(document, "new table\n")
    assert replaced == f"# B\n\nbefore\n{SECTION_START}\nnew table\n{SECTION_END}\nafter\n"
    assert replace_section(replaced, "new table") == replaced


def test_replace_section_appends_a_marked_section_when_there_is_none() -> None:
    replaced = replace_section("# B\n\ntext\n", "table")
    assert replaced.startswith("# B\n\ntext\n\n## ")
    assert replaced.endswith(f"{SECTION_START}\ntable\n{SECTION_END}\n")
    assert replace_section(replaced, "other").count(SECTION_START) == 1


def test_replace_section_refuses_a_lone_marker() -> None:
    with pytest.raises(ValueError):
        replace_section(f"x\n{SECTION_START}\n", "table")
    with pytest.raises(ValueError):
        replace_section(f"x\n{SECTION_END}\n{SECTION_START}\n", "table")


def test_a_marker_quoted_in_prose_is_not_a_marker() -> None:
    document = f"the `{SECTION_START}` markers\n{SECTION_START}\nold\n{SECTION_END}\n"
    replaced = replace_section(document, "new")
    assert replaced == f"the `{SECTION_START}` markers\n{SECTION_START}\nnew\n{SECTION_END}\n"


def test_round_figures_are_plain_data() -> None:
    assert dataclasses.asdict(figures(1, rf1=1.0, baseline=2.0))["e2e"]["p99_ms"] == 20.0
