"""PartitionLog's leader-epoch cache: kept by appends, truncation and retention, and
checkpointed so that open (clean, after a kill, or without the file) rebuilds exactly
what the batch headers say. Every check compares with a brute force over the headers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raftka.storage.batch import build_fragments, encode_batch
from raftka.storage.epochs import LeaderEpochCache
from raftka.storage.errors import OffsetOutOfRangeError
from raftka.storage.log import (
    CLEAN_SHUTDOWN_FILE,
    EMPTY_EPOCHS_TEXT,
    LEADER_EPOCH_CHECKPOINT_FILE,
    LogConfig,
    PartitionLog,
)

from .helpers import append_fetched, append_rolling, apply_retention, open_log, records

Pairs = list[tuple[int, int]]
SEGMENT_BYTES = 2000  # a batch of five records is ~450 bytes: four batches a segment


def brute_entries(log: PartitionLog) -> Pairs:
    """(epoch, start_offset) of each batch that starts a newer epoch, from the headers."""
    entries: Pairs = []
    for h in log.batches(log.log_start_offset):
        if not entries or h.leader_epoch > entries[-1][0]:
            entries.append((h.leader_epoch, h.base_offset))
    return entries


def brute_end_offset_for(log: PartitionLog, requested: int) -> tuple[int, int]:
    """Kafka's endOffsetFor, answered from the batch headers alone."""
    headers = list(log.batches(log.log_start_offset))
    if requested == -1 or not headers:
        return (-1, -1)
    if requested == headers[-1].leader_epoch:
        return (requested, log.log_end_offset)
    higher = [h.base_offset for h in headers if h.leader_epoch > requested]
    if not higher:
        return (-1, -1)
    floor = [h.leader_epoch for h in headers if h.leader_epoch <= requested]
    return (floor[-1] if floor else requested, higher[0])


def entries(log: PartitionLog) -> Pairs:
    return [(e.epoch, e.start_offset) for e in log.epoch_entries()]


def checkpoint(log: PartitionLog) -> Pairs:
    """The leader-epoch checkpoint file's entries; no file means none."""
    path = log.directory / LEADER_EPOCH_CHECKPOINT_FILE
    text = path.read_text() if path.exists() else EMPTY_EPOCHS_TEXT
    return [(e.epoch, e.start_offset) for e in LeaderEpochCache.from_text(text).entries()]


def segment_bases(log: PartitionLog) -> list[int]:
    return sorted(int(p.stem) for p in log.directory.glob("*.log"))


def in_epochs(path: Path, epochs: list[int]) -> PartitionLog:
    """One batch of five records per epoch given, over several segments."""
    log = open_log(path, segment_bytes=SEGMENT_BYTES)
    for k, epoch in enumerate(epochs):
        append_rolling(log, records(5 * k, 5), leader_epoch=epoch)
    return log


EPOCHS = [0, 0, 1, 1, 1, 3, 3, 4, 4, 4, 4, 4, 7, 7, 9]  # fifteen batches, ~4 segments


def test_appends_record_the_first_batch_of_each_newer_epoch(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", EPOCHS)
    assert entries(log) == [(0, 0), (1, 10), (3, 25), (4, 35), (7, 60), (9, 70)]
    assert log.latest_epoch == 9
    assert len(segment_bases(log)) >= 3
    expected = {-1: (-1, -1), 0: (0, 10), 2: (1, 25), 4: (4, 60), 9: (9, 75), 10: (-1, -1)}
    assert {e: log.end_offset_for_epoch(e) for e in expected} == expected


def test_fetched_batches_record_the_epoch_in_their_headers(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    for base, epoch in [(0, 2), (3, 2), (6, 5)]:
        frags = build_fragments(base, records(base, 3))
        batch = encode_batch(base, frags, first_timestamp=1, max_timestamp=3, leader_epoch=epoch)
        append_fetched(log, batch)
    assert entries(log) == [(2, 0), (5, 6)]


def test_an_older_epoch_in_a_batch_does_not_rewrite_the_cache(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", [3])
    append_rolling(log, records(5, 5), leader_epoch=2)  # a stale leader's batch
    assert entries(log) == [(3, 0)]


def test_negative_leader_epochs_are_refused(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    with pytest.raises(ValueError):
        log.append(records(0, 1), leader_epoch=-1)
    frags = build_fragments(0, records(0, 1))
    with pytest.raises(ValueError):
        append_fetched(
            log, encode_batch(0, frags, first_timestamp=1, max_timestamp=1, leader_epoch=-1)
        )
    assert log.log_end_offset == 0


def test_a_new_leader_announces_its_epoch_at_the_log_end(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", [0, 0, 1])
    assert log.assign_epoch(4, log.log_end_offset)
    assert not log.assign_epoch(4, log.log_end_offset)  # the same epoch again
    assert log.end_offset_for_epoch(1) == (1, 15)  # before any batch of epoch 4
    assert log.end_offset_for_epoch(4) == (4, 15)
    append_rolling(log, records(15, 5), leader_epoch=4)
    assert entries(log) == [(0, 0), (1, 10), (4, 15)]
    with pytest.raises(OffsetOutOfRangeError):
        log.assign_epoch(5, log.log_end_offset + 1)


def test_an_epoch_announced_but_never_written_yields_to_a_newer_one(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", [0])
    log.assign_epoch(2, 5)
    append_rolling(log, records(5, 5), leader_epoch=3)  # leadership moved on before epoch 2 wrote
    assert entries(log) == [(0, 0), (3, 5)]


def test_truncation_drops_epochs_starting_at_or_after_the_new_end(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", EPOCHS)
    assert log.truncate_to(62) == 60  # inside the first batch of epoch 7
    assert entries(log) == [(0, 0), (1, 10), (3, 25), (4, 35)]
    assert log.end_offset_for_epoch(4) == (4, 60)
    assert checkpoint(log) == entries(log)  # durable on return, like the truncation
    assert log.truncate_to(0) == 0 and entries(log) == []


def test_truncating_at_the_end_drops_an_epoch_announced_there_and_never_written(
    tmp_path: Path,
) -> None:
    """Kafka's truncateTo does it too: the epoch of a leader deposed before its first batch
    is in no other replica's log, and a follower naming it would be told it diverges."""
    log = in_epochs(tmp_path / "p", [0, 0, 1])
    log.assign_epoch(4, log.log_end_offset)
    assert log.truncate_to(log.log_end_offset) == 15
    assert entries(log) == [(0, 0), (1, 10)]
    assert checkpoint(log) == entries(log)  # durable on return
    assert log.truncate_to(10**6) == 15 and entries(log) == [(0, 0), (1, 10)]


def test_truncate_fully_clears_the_cache(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", EPOCHS)
    log.truncate_fully_and_start_at(500)
    assert entries(log) == [] and checkpoint(log) == [] and log.latest_epoch == -1
    append_rolling(log, records(500, 5), leader_epoch=2)
    assert entries(log) == [(2, 500)]


def test_retention_moves_the_epoch_in_force_to_the_new_log_start(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES, retention_bytes=3 * SEGMENT_BYTES)
    for k, epoch in enumerate(EPOCHS):
        append_rolling(log, records(5 * k, 5), leader_epoch=epoch)
    assert apply_retention(log, now_ms=0) > 0
    start = log.log_start_offset
    assert start > 0 and entries(log) == brute_entries(log)
    assert entries(log)[0][1] == start
    assert checkpoint(log) == entries(log)


def test_every_roll_leaves_a_checkpoint_covering_the_epochs_below_the_new_segment(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES)
    for k, epoch in enumerate(EPOCHS):
        bases = segment_bases(log)
        append_rolling(log, records(5 * k, 5), leader_epoch=epoch)
        if segment_bases(log) != bases:
            active_base = segment_bases(log)[-1]
            below = [(e, s) for e, s in brute_entries(log) if s < active_base]
            assert checkpoint(log)[: len(below)] == below


class Killed(Exception):
    """The process dies here."""


def kill_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def killed(*args: object) -> None:
        raise Killed

    monkeypatch.setattr(f"raftka.storage.log.{name}", killed)


def test_a_kill_right_after_a_roll_created_the_segment_loses_no_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = in_epochs(tmp_path / "p", [0, 0, 1, 1, 2, 3])  # rolled once, at offset 20
    assert segment_bases(log) == [0, 20] and checkpoint(log) == [(0, 0), (1, 10)]
    kill_at(monkeypatch, "fsync_dir")
    with pytest.raises(Killed):
        log.roll()  # dies once the new segment's file exists
    log.abandon()
    monkeypatch.undo()
    assert segment_bases(log) == [0, 20, 30]
    again = reopen(log)
    assert entries(again) == brute_entries(again) == [(0, 0), (1, 10), (2, 20), (3, 25)]


def test_a_kill_inside_truncate_fully_finds_no_stale_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = in_epochs(tmp_path / "p", EPOCHS)
    log.close()
    log = reopen(log)
    kill_at(monkeypatch, "write_durably")
    with pytest.raises(Killed):
        log.truncate_fully_and_start_at(500)  # dies after the segments went
    log.abandon()
    monkeypatch.undo()
    again = reopen(log)
    assert (again.log_start_offset, again.log_end_offset) == (500, 500)
    assert entries(again) == brute_entries(again) == []


def test_sync_writes_the_checkpoint_only_when_the_cache_changed(tmp_path: Path) -> None:
    log = in_epochs(tmp_path / "p", [0, 2])
    log.sync()
    assert checkpoint(log) == [(0, 0), (2, 5)]
    (log.directory / LEADER_EPOCH_CHECKPOINT_FILE).unlink()
    append_rolling(log, records(10, 5), leader_epoch=2)  # same epoch: no change
    log.sync()
    assert not (log.directory / LEADER_EPOCH_CHECKPOINT_FILE).exists()
    append_rolling(log, records(15, 5), leader_epoch=3)
    log.sync()
    assert checkpoint(log) == [(0, 0), (2, 5), (3, 15)]


def reopen(log: PartitionLog) -> PartitionLog:
    return open_log(log.directory, segment_bytes=SEGMENT_BYTES)


@pytest.mark.parametrize("checkpoint_file", ["kept", "deleted", "garbage"])
@pytest.mark.parametrize("stop", ["kill", "close"])
def test_open_rebuilds_what_the_batch_headers_say(
    tmp_path: Path, stop: str, checkpoint_file: str
) -> None:
    log = in_epochs(tmp_path / "p", EPOCHS)
    expected = brute_entries(log)
    assert entries(log) == expected
    if stop == "kill":
        log.abandon()  # epochs 7 and 9 started in the active segment after the last roll
    else:
        log.close()
    path = tmp_path / "p" / LEADER_EPOCH_CHECKPOINT_FILE
    if checkpoint_file == "deleted":
        path.unlink()
    elif checkpoint_file == "garbage":
        path.write_bytes(b"0\n9\n\xff")
    again = reopen(log)
    assert entries(again) == expected == brute_entries(again)
    assert again.end_offset_for_epoch(4) == (4, 60)


def test_a_checkpoint_that_does_not_reach_the_log_start_is_rebuilt(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES, retention_bytes=3 * SEGMENT_BYTES)
    for k, epoch in enumerate(EPOCHS):
        append_rolling(log, records(5 * k, 5), leader_epoch=epoch)
    log.detach_expired_segments(now_ms=0)
    log.sync()  # writes the cache as retention left it...
    log.abandon()  # ...but the kill came before the segments were deleted
    again = open_log(tmp_path / "p", segment_bytes=SEGMENT_BYTES)
    assert again.log_start_offset == 0
    assert entries(again) == brute_entries(again) == [
        (0, 0), (1, 10), (3, 25), (4, 35), (7, 60), (9, 70),
    ]  # fmt: skip


class EpochModel(RuleBasedStateMachine):
    """Appends with non-decreasing epochs, rolls, truncations, retention, kills and
    reopens; after each, the cache and end_offset_for_epoch equal the brute force."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="raftka-epochs-")) / "p"
        self.epoch = 0

    @initialize(
        segment_bytes=st.integers(300, 3000), retention_bytes=st.none() | st.integers(0, 6000)
    )
    def open_log(self, segment_bytes: int, retention_bytes: int | None) -> None:
        self.config = LogConfig(
            segment_bytes=segment_bytes, retention_ms=None, retention_bytes=retention_bytes
        )
        self.log = PartitionLog.open(self.dir, self.config)

    def teardown(self) -> None:
        if hasattr(self, "log"):
            self.log.abandon()
        shutil.rmtree(self.dir.parent, ignore_errors=True)

    @rule(count=st.integers(1, 6), epoch_step=st.sampled_from([0, 0, 0, 1, 3]))
    def append(self, count: int, epoch_step: int) -> None:
        self.epoch += epoch_step
        end = self.log.log_end_offset
        append_rolling(self.log, records(end, count), leader_epoch=self.epoch)

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.log.log_start_offset, self.log.log_end_offset))
        self.log.truncate_to(offset)

    # An empty log keeps its last epoch at the log start (Kafka's truncateFromStart),
    # which no batch header shows: retention runs while the active segment has a batch.
    @precondition(lambda self: self.log.log_end_offset > segment_bases(self.log)[-1])
    @rule()
    def retention(self) -> None:
        apply_retention(self.log, now_ms=0)

    @rule(data=st.data())
    def truncate_fully(self, data: st.DataObject) -> None:
        end = self.log.log_end_offset
        self.log.truncate_fully_and_start_at(data.draw(st.integers(end, end + 50)))

    @rule(sync_first=st.booleans(), checkpoint_file=st.sampled_from(["kept", "deleted"]))
    def kill(self, sync_first: bool, checkpoint_file: str) -> None:
        if sync_first:
            self.log.sync()
        self.log.abandon()
        if checkpoint_file == "deleted":
            (self.dir / LEADER_EPOCH_CHECKPOINT_FILE).unlink(missing_ok=True)
        self.log = PartitionLog.open(self.dir, self.config)

    @rule(data=st.data())
    def kill_with_a_torn_tail(self, data: st.DataObject) -> None:
        self.log.abandon()
        active = sorted(self.dir.glob("*.log"))[-1]
        with active.open("r+b") as f:
            f.truncate(data.draw(st.integers(0, active.stat().st_size)))
        self.log = PartitionLog.open(self.dir, self.config)

    @rule()
    def close_and_reopen(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(self.dir, self.config)

    @invariant()
    def cache_matches_the_batch_headers(self) -> None:
        if not hasattr(self, "log"):
            return
        assert entries(self.log) == brute_entries(self.log)
        for requested in range(-1, self.epoch + 3):
            expected = brute_end_offset_for(self.log, requested)
            assert self.log.end_offset_for_epoch(requested) == expected, requested


TestEpochModel = EpochModel.TestCase


def test_a_truncation_at_the_log_end_drops_an_epoch_with_no_batch(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", LogConfig())
    log.append([(1, b'"value":1')], leader_epoch=1)
    assert log.assign_epoch(2, log.log_end_offset)
    assert log.latest_epoch == 2
    assert log.truncate_to(log.log_end_offset + 5) == 1
    assert log.latest_epoch == 1
    assert log.end_offset_for_epoch(1) == (1, 1)
    log.close()


def test_a_new_log_writes_no_checkpoint_until_an_epoch_holds_a_batch(tmp_path: Path) -> None:
    """A missing checkpoint reads as empty, and open drops an epoch that starts at the log
    end: so a new partition's leader, which announces its epoch at offset 0, writes no
    checkpoint file, at sync or at close, until a batch of that epoch exists."""
    (tmp_path / "p").mkdir()
    log = PartitionLog.create(tmp_path / "p", LogConfig(segment_bytes=SEGMENT_BYTES))
    assert log.assign_epoch(0, 0)
    log.sync()
    log.close()
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "00000000000000000000.log",
        CLEAN_SHUTDOWN_FILE,
    ]
    again = reopen(log)
    assert entries(again) == [] and checkpoint(again) == []
    assert again.assign_epoch(1, 0)
    append_rolling(again, records(0, 5), leader_epoch=1)
    again.sync()
    assert checkpoint(again) == [(1, 0)]
    again.abandon()  # a kill: the epoch survives in the checkpoint and the headers alike
    assert entries(reopen(again)) == [(1, 0)]
