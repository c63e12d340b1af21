"""PartitionReplica: who may append, what readers see, and how long-polls and ISR changes wake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from raftka.metadata.errors import LeaderNotAvailable, NotEnoughReplicas, OffsetOutOfRange
from raftka.replication.partition import PartitionReplica, PartitionRole
from raftka.storage.log import LogConfig, PartitionLog

BROKER = 1
OTHER = 2
# Generous bound for anything that should happen "at once"; a hang fails instead of blocking.
WAKE_TIMEOUT_S = 5.0
# A long-poll that must be woken by an event, never by its own deadline.
LONG_POLL_S = 30.0
# A long-poll that is expected to run out.
SHORT_POLL_S = 0.05


def role(
    *,
    leader: int | None = BROKER,
    isr: tuple[int, ...] = (BROKER,),
    min_insync_replicas: int = 1,
    leader_epoch: int = 1,
    partition_epoch: int = 1,
) -> PartitionRole:
    return PartitionRole(
        leader=leader,
        leader_epoch=leader_epoch,
        partition_epoch=partition_epoch,
        isr=isr,
        min_insync_replicas=min_insync_replicas,
    )


def records(count: int, first_ts: int = 1_000) -> list[tuple[int, bytes]]:
    return [(first_ts + i, b'"key":null,"value":%d,"headers":{}' % i) for i in range(count)]


def offsets_of(result_json: bytes) -> list[int]:
    return [r["offset"] for r in orjson.loads(b"[" + result_json + b"]")]


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[PartitionReplica]:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(retention_ms=None))
    replica = PartitionReplica("t", 0, log, BROKER)
    replica.become(role())
    yield replica
    replica.close()


# ---- appending -------------------------------------------------------------------------


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("leader", [OTHER, None], ids=["other-leader", "no-leader"])
def test_only_the_leader_may_append(
    replica: PartitionReplica, leader: int | None, acks: str
) -> None:
    replica.become(role(leader=leader, isr=(OTHER,) if leader else (BROKER,)))
    with pytest.raises(LeaderNotAvailable):
        replica.check_can_append(acks)
    assert replica.log.log_end_offset == 0


@pytest.mark.parametrize(
    ("isr", "min_insync_replicas", "acks", "refused"),
    [
        ((BROKER,), 2, "all", True),
        ((BROKER, OTHER), 3, "all", True),
        ((BROKER,), 1, "all", False),
        ((BROKER, OTHER), 2, "all", False),
        ((BROKER, OTHER, 3), 2, "all", False),
        ((BROKER,), 2, "1", False),
        ((BROKER,), 3, "0", False),
    ],
)
def test_acks_all_needs_min_insync_replicas_and_other_acks_ignore_it(
    replica: PartitionReplica,
    isr: tuple[int, ...],
    min_insync_replicas: int,
    acks: str,
    refused: bool,
) -> None:
    replica.become(role(isr=isr, min_insync_replicas=min_insync_replicas))
    if refused:
        with pytest.raises(NotEnoughReplicas):
            replica.check_can_append(acks)
        assert replica.log.log_end_offset == 0
    else:
        replica.check_can_append(acks)


def test_a_leader_appends_with_its_leader_epoch(replica: PartitionReplica) -> None:
    replica.become(role(leader_epoch=7))
    info = replica.append(records(3))
    assert (info.base_offset, info.last_offset) == (0, 2)
    assert [h.leader_epoch for h in replica.log.batches()] == [7]
    assert replica.high_watermark == 3


@pytest.mark.parametrize(
    ("isr", "expected"),
    [
        ((BROKER, OTHER, 3), (BROKER,)),
        ((BROKER, OTHER), (BROKER,)),
        ((OTHER, BROKER), (BROKER,)),
        ((BROKER,), None),
    ],
)
def test_isr_before_append_shrinks_to_the_leader_until_it_is_alone(
    replica: PartitionReplica, isr: tuple[int, ...], expected: tuple[int, ...] | None
) -> None:
    replica.become(role(isr=isr))
    assert replica.isr_before_append() == expected


# ---- reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 2, 4])
def test_read_returns_records_below_the_high_watermark_only(
    replica: PartitionReplica, start: int
) -> None:
    replica.append(records(3))
    replica.append(records(2))
    result = replica.read(start, max_records=1 << 20, max_bytes=1 << 20)
    assert offsets_of(result.records_json) == list(range(start, replica.high_watermark))
    assert result.next_offset == replica.high_watermark == 5


def test_read_at_the_high_watermark_is_empty(replica: PartitionReplica) -> None:
    replica.append(records(3))
    result = replica.read(3, max_records=100, max_bytes=1 << 20)
    assert (result.records_json, result.record_count, result.next_offset) == (b"", 0, 3)


@pytest.mark.parametrize(
    "offset",
    [0, 9, 14, 1_000],
    ids=["far-below-start", "just-below-start", "just-past-hw", "far-past-hw"],
)
def test_read_outside_the_log_raises_offset_out_of_range_with_its_bounds(
    replica: PartitionReplica, offset: int
) -> None:
    replica.log.truncate_fully_and_start_at(10)
    replica.append(records(3))  # offsets 10..12, high watermark 13
    with pytest.raises(OffsetOutOfRange) as caught:
        replica.read(offset, max_records=100, max_bytes=1 << 20)
    assert caught.value.details == {"log_start_offset": 10, "high_watermark": 13}


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [(0, 0), (100, 0), (150, 1), (200, 1), (300, 2), (301, None), (10**12, None)],
)
def test_offset_for_timestamp_answers_first_offset_at_or_after_it_below_the_high_watermark(
    replica: PartitionReplica, timestamp_ms: int, expected: int | None
) -> None:
    replica.append([(100, b'"value":0'), (200, b'"value":1'), (300, b'"value":2')])
    answer = replica.offset_for_timestamp(timestamp_ms)
    assert answer == expected
    assert answer is None or answer < replica.high_watermark


# ---- long-polling ----------------------------------------------------------------------


async def start_waiting(replica: PartitionReplica, offset: int) -> asyncio.Task[None]:
    task = asyncio.create_task(replica.wait_for_records(offset, LONG_POLL_S))
    await asyncio.sleep(0)  # let it reach its wait
    assert not task.done(), "the long-poll returned before anything happened"
    return task


async def test_wait_for_records_returns_as_soon_as_a_record_at_the_offset_is_appended(
    replica: PartitionReplica,
) -> None:
    replica.append(records(2))
    task = await start_waiting(replica, 2)
    replica.append(records(1))
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)
    assert replica.read(2, max_records=10, max_bytes=1 << 20).record_count == 1


async def test_wait_for_records_keeps_waiting_while_appends_stay_below_the_offset(
    replica: PartitionReplica,
) -> None:
    task = await start_waiting(replica, 2)
    replica.append(records(1))  # offset 0: not yet what the reader asked for
    await asyncio.sleep(0)
    assert not task.done()
    replica.append(records(2))  # offsets 1..2
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)


async def test_wait_for_records_returns_at_once_when_the_record_is_already_there(
    replica: PartitionReplica,
) -> None:
    replica.append(records(3))
    await asyncio.wait_for(replica.wait_for_records(1, LONG_POLL_S), WAKE_TIMEOUT_S)


async def test_wait_for_records_returns_when_the_replica_closes(
    replica: PartitionReplica,
) -> None:
    task = await start_waiting(replica, 0)
    replica.close()
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)


@pytest.mark.parametrize("new_leader", [OTHER, None], ids=["other-leader", "no-leader"])
async def test_wait_for_records_returns_when_leadership_is_taken_away(
    replica: PartitionReplica, new_leader: int | None
) -> None:
    task = await start_waiting(replica, 0)
    replica.become(role(leader=new_leader, leader_epoch=2, isr=(OTHER,)))
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)


async def test_wait_for_records_on_a_follower_returns_at_once(
    replica: PartitionReplica,
) -> None:
    replica.become(role(leader=OTHER, isr=(OTHER, BROKER)))
    await asyncio.wait_for(replica.wait_for_records(0, LONG_POLL_S), WAKE_TIMEOUT_S)


async def test_wait_for_records_returns_after_the_timeout_with_nothing(
    replica: PartitionReplica,
) -> None:
    replica.append(records(1))
    await asyncio.wait_for(replica.wait_for_records(1, SHORT_POLL_S), WAKE_TIMEOUT_S)
    assert replica.high_watermark == 1
    assert replica.read(1, max_records=10, max_bytes=1 << 20).record_count == 0


# ---- ISR changes -----------------------------------------------------------------------


class CountingChange:
    """An ISR change that counts its runs and finishes only when released."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> None:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error


async def test_change_isr_once_shares_one_run_between_concurrent_callers(
    replica: PartitionReplica,
) -> None:
    change = CountingChange()
    callers = [asyncio.create_task(replica.change_isr_once(change)) for _ in range(5)]
    await asyncio.wait_for(change.started.wait(), WAKE_TIMEOUT_S)
    change.release.set()
    await asyncio.wait_for(asyncio.gather(*callers), WAKE_TIMEOUT_S)
    assert change.runs == 1


async def test_change_isr_once_runs_again_for_a_call_after_the_last_run_finished(
    replica: PartitionReplica,
) -> None:
    change = CountingChange()
    change.release.set()
    await asyncio.wait_for(replica.change_isr_once(change), WAKE_TIMEOUT_S)
    await asyncio.wait_for(replica.change_isr_once(change), WAKE_TIMEOUT_S)
    assert change.runs == 2


async def test_change_isr_once_failure_reaches_every_caller_and_the_next_call_retries(
    replica: PartitionReplica,
) -> None:
    change = CountingChange()
    change.error = RuntimeError("controller unreachable")
    callers = [asyncio.create_task(replica.change_isr_once(change)) for _ in range(3)]
    await asyncio.wait_for(change.started.wait(), WAKE_TIMEOUT_S)
    change.release.set()
    results = await asyncio.wait_for(
        asyncio.gather(*callers, return_exceptions=True), WAKE_TIMEOUT_S
    )
    assert [type(r) for r in results] == [RuntimeError] * 3
    change.error = None
    await asyncio.wait_for(replica.change_isr_once(change), WAKE_TIMEOUT_S)
    assert change.runs == 2


async def test_change_isr_once_survives_a_cancelled_caller(
    replica: PartitionReplica,
) -> None:
    change = CountingChange()
    first = asyncio.create_task(replica.change_isr_once(change))
    await asyncio.wait_for(change.started.wait(), WAKE_TIMEOUT_S)
    second = asyncio.create_task(replica.change_isr_once(change))
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(first, WAKE_TIMEOUT_S)
    change.release.set()
    await asyncio.wait_for(second, WAKE_TIMEOUT_S)
    assert change.runs == 1
