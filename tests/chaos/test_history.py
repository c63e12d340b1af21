"""history.jsonl: round trips, the strict reader, invoke/completion pairing, fault windows."""

from pathlib import Path

import pytest

from raftka.chaos.history import (
    FINAL_READ,
    FINAL_READER,
    HistoryError,
    HistoryWriter,
    Op,
    OpType,
    parse_lines,
    read_history,
)

LINES = [
    '{"time": 0, "process": "runner", "type": "info", "f": "run", "value": {"seed": 7}}',
    '{"time": 0.1, "process": 0, "type": "invoke", "f": "send", "value": "v-1"}',
    '{"time": 0.2, "process": "nemesis", "type": "info", "f": "start",'
    ' "value": {"fault": "pause", "target": [2]}}',
    '{"time": 0.3, "process": 0, "type": "ok", "f": "send", "value": "v-1",'
    ' "topic": "t", "partition": 2, "offset": 41}',
    '{"time": 0.9, "process": "nemesis", "type": "info", "f": "stop",'
    ' "value": {"fault": "pause", "target": [2]}}',
    '{"time": 1.0, "process": "final-reader", "type": "ok", "f": "final-read", "topic": "t",'
    ' "value": [{"partition": 2, "offset": 41, "value": "v-1"}], "note": "kept"}',
]


def test_a_history_survives_writing_and_reading(tmp_path: Path) -> None:
    history = parse_lines(LINES)
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as writer:
        for op in history:
            writer.append(op)
    assert read_history(path).ops == history.ops
    assert history.ops[-1].extra == {"note": "kept"}


def test_read_records_take_the_ops_topic_when_they_have_none() -> None:
    final = parse_lines(LINES).final_reads()
    assert [(r.topic, r.partition, r.offset, r.value) for r in final[0].records()] == [
        ("t", 2, 41, "v-1")
    ]
    assert final[0].process == FINAL_READER and final[0].f == FINAL_READ


def test_a_completion_pairs_with_its_processs_latest_invoke() -> None:
    done = parse_lines(LINES).completions()
    send = next(c for c in done if c.op.f == "send")
    assert send.invoke is not None and send.invoke_time == 0.1


def test_fault_windows_pair_start_and_stop_by_fault_and_target() -> None:
    history = parse_lines(
        [
            '{"time": 1, "process": "nemesis", "type": "info", "f": "start",'
            ' "value": {"fault": "kill", "target": [1]}}',
            '{"time": 2, "process": "nemesis", "type": "info", "f": "start",'
            ' "value": {"fault": "kill", "target": [2]}}',
            '{"time": 3, "process": "nemesis", "type": "info", "f": "stop",'
            ' "value": {"fault": "kill", "target": [2]}}',
            '{"time": 5, "process": 1, "type": "invoke", "f": "send", "value": 1}',
        ]
    )
    windows = history.fault_windows()
    assert [(w.target, w.start, w.stop, w.end(history.end_time)) for w in windows] == [
        ([1], 1.0, None, 5.0),
        ([2], 2.0, 3.0, 3.0),
    ]


def test_the_run_info_names_the_seed() -> None:
    assert parse_lines(LINES).run_info() == {"seed": 7}


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"process": 1, "type": "ok", "f": "send"}', "missing 'time'"),
        ('{"time": 1, "process": 1, "type": "done", "f": "send"}', "'type'"),
        ('{"time": 1, "process": [1], "type": "ok", "f": "send"}', "'process'"),
        ('{"time": 1, "process": 1, "type": "ok", "f": "send", "offset": "4"}', "'offset'"),
        ('{"time": 1, "process": 1, "type": "ok", "f": "poll", "value": 3}', "list of records"),
        ('{"time": 1, "process": 1, "type": "ok", "f": "poll", "value": [{"offset": 1}]}', "poll"),
    ],
)
def test_a_malformed_line_is_refused_with_its_number(line: str, complaint: str) -> None:
    with pytest.raises(HistoryError, match="line 2") as raised:
        parse_lines([LINES[0], line])
    assert complaint in str(raised.value)


def test_an_op_written_from_code_has_the_documented_shape() -> None:
    op = Op(1.5, "c1", OpType.OK, "send", "v-17", topic="t", partition=2, offset=41)
    assert op.to_json() == {
        "time": 1.5,
        "process": "c1",
        "type": "ok",
        "f": "send",
        "value": "v-17",
        "topic": "t",
        "partition": 2,
        "offset": 41,
    }
