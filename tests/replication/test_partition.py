"""PartitionReplica on a real log: appends, acks=all, followers' fetches, reads, long-polls,
epoch-fenced roles, idempotent producers, and disk work off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from raftka.metadata.errors import (
    InvalidProducerEpoch,
    LeaderNotAvailable,
    NotEnoughReplicas,
    OffsetOutOfRange,
    OutOfOrderSequence,
    RequestTimedOut,
)
from raftka.replication.follower import Append, StartAt, TruncateTo, plan_after_fetch
from raftka.replication.leader import FetchVerdict
from raftka.replication.partition import (
    PartitionReplica,
    PartitionRole,
    RunBlocking,
    epoch_before,
    rebuild_producer_states,
)
from raftka.replication.producer_state import Duplicate, ProducerBatch, ProducerRef, ProducerStates
from raftka.storage.errors import CorruptBatchError
from raftka.storage.log import LogConfig, PartitionLog

BROKER, F1, F2 = 1, 2, 3
REPLICAS = (BROKER, F1, F2)
LAG_MS = 10_000
# Generous bound for anything that should happen "at once"; a hang fails instead of blocking.
WAKE_TIMEOUT_S = 5.0
LONG_POLL_S = 30.0  # a long-poll that must be woken by an event, never by its deadline
SHORT_POLL_S = 0.05  # a long-poll that is expected to run out


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        return self.now_ms


def role(
    *,
    leader: int | None = BROKER,
    replicas: tuple[int, ...] = (BROKER,),
    isr: tuple[int, ...] | None = None,
    min_insync_replicas: int = 1,
    leader_epoch: int = 1,
    partition_epoch: int = 1,
) -> PartitionRole:
    return PartitionRole(
        leader=leader,
        leader_epoch=leader_epoch,
        partition_epoch=partition_epoch,
        replicas=replicas,
        isr=replicas if isr is None else isr,
        min_insync_replicas=min_insync_replicas,
    )


def records(count: int, first_ts: int = 1_000) -> list[tuple[int, bytes]]:
    return [(first_ts + i, b'"key":null,"value":%d,"headers":{}' % i) for i in range(count)]


def offsets_of(result_json: bytes) -> list[int]:
    return [r["offset"] for r in orjson.loads(b"[" + result_json + b"]")]


def run_inline(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """A simulation's runner: does the work at once and hands back a completed future."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


class Replicas:
    """Builds replicas on real logs under tmp_path and closes them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = Clock()
        self.proposals: list[tuple[str, tuple[int, ...]]] = []
        self.made: list[PartitionReplica] = []

    def make(
        self,
        name: str = "t",
        broker_id: int = BROKER,
        config: LogConfig | None = None,
        run_blocking: RunBlocking | None = None,
    ) -> PartitionReplica:
        log = PartitionLog.open(self.root / f"{name}-{broker_id}", config or LogConfig())
        replica = PartitionReplica(
            name,
            0,
            f"id-{name}",
            log,
            broker_id=broker_id,
            high_watermark=0,
            producers=ProducerStates(),
            replica_lag_time_max_ms=LAG_MS,
            clock=self.clock,
            propose_isr=lambda r, isr: self.proposals.append((r.topic, isr)),
            run_blocking=run_blocking,
        )
        self.made.append(replica)
        return replica

    def close(self) -> None:
        for replica in self.made:
            replica.close()
            replica.log.close()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    made = Replicas(tmp_path)
    yield made
    made.close()


@pytest.fixture
def replica(replicas: Replicas) -> PartitionReplica:
    r = replicas.make()
    r.become(role())
    return r


def fetch(
    leader: PartitionReplica, follower: int, offset: int, last_epoch: int = 1, epoch: int = 1
) -> tuple[FetchVerdict, bytes]:
    answer = leader.answer_follower(follower, epoch, offset, last_epoch, 1 << 20)
    return answer.verdict, bytes(answer.records)


# ---- appending -------------------------------------------------------------------------


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("leader", [F1, None], ids=["other-leader", "no-leader"])
async def test_only_the_leader_may_append(
    replica: PartitionReplica, leader: int | None, acks: str
) -> None:
    replica.become(role(leader=leader, replicas=REPLICAS, leader_epoch=2, partition_epoch=2))
    with pytest.raises(LeaderNotAvailable):
        await replica.append(records(1), acks=acks)
    assert replica.log.log_end_offset == 0


@pytest.mark.parametrize(
    ("isr", "min_insync_replicas", "refused"),
    [
        ((BROKER,), 2, True),
        ((BROKER, F1), 3, True),
        ((BROKER,), 1, False),
        ((BROKER, F1), 2, False),
    ],
)
async def test_acks_all_needs_min_insync_replicas_before_anything_is_written(
    replica: PartitionReplica, isr: tuple[int, ...], min_insync_replicas: int, refused: bool
) -> None:
    replica.become(
        role(replicas=REPLICAS, isr=isr, min_insync_replicas=min_insync_replicas, partition_epoch=2)
    )
    if refused:
        with pytest.raises(NotEnoughReplicas):
            await replica.append(records(1), acks="all")
        assert replica.log.log_end_offset == 0
    else:
        await replica.append(records(1), acks="all")
    await replica.append(records(1), acks="1")  # other acks ignore min_insync_replicas


async def test_a_new_leader_records_its_epoch_and_appends_with_it(replicas: Replicas) -> None:
    r = replicas.make()
    r.become(role(leader_epoch=7))
    assert r.log.latest_epoch == 7
    appended = await r.append(records(3))
    assert (appended.base_offset, appended.last_offset) == (0, 2)
    assert [h.leader_epoch for h in r.log.batches()] == [7]


async def test_a_leader_alone_in_the_isr_commits_at_once(replica: PartitionReplica) -> None:
    await replica.append(records(3))
    assert replica.high_watermark == 3


async def test_appends_roll_segments_off_the_event_loop(replicas: Replicas) -> None:
    r = replicas.make(config=LogConfig(segment_bytes=300, retention_ms=None))
    r.become(role())
    for _ in range(10):
        await r.append(records(3))
    assert r.log.log_end_offset == 30
    assert len(list(r.log.directory.glob("*.log"))) > 1
    assert offsets_of(r.read(0, max_records=100, max_bytes=1 << 20).records_json) == list(range(30))


# ---- the high watermark and acks=all ------------------------------------------------------


@pytest.fixture
def leader3(replicas: Replicas) -> PartitionReplica:
    r = replicas.make()
    r.become(role(replicas=REPLICAS, min_insync_replicas=2))
    return r


async def test_records_are_readable_once_every_isr_member_fetched_past_them(
    leader3: PartitionReplica,
) -> None:
    await leader3.append(records(3))
    assert leader3.high_watermark == 0
    assert leader3.read(0, max_records=10, max_bytes=1 << 20).record_count == 0
    fetch(leader3, F1, 3)
    assert leader3.high_watermark == 0, "F2 has not fetched yet"
    fetch(leader3, F2, 2)
    assert leader3.high_watermark == 2
    fetch(leader3, F2, 3)
    assert leader3.read(0, max_records=10, max_bytes=1 << 20).record_count == 3


async def test_acks_all_answers_once_the_high_watermark_passes_the_batch(
    leader3: PartitionReplica,
) -> None:
    appended = await leader3.append(records(2), acks="all")
    waiting = asyncio.create_task(leader3.wait_for_commit(appended, LONG_POLL_S))
    await asyncio.sleep(0)
    fetch(leader3, F1, 2)
    await asyncio.sleep(0)
    assert not waiting.done()
    fetch(leader3, F2, 2)
    await asyncio.wait_for(waiting, WAKE_TIMEOUT_S)


async def test_acks_all_times_out_when_a_follower_never_fetches(leader3: PartitionReplica) -> None:
    appended = await leader3.append(records(1), acks="all")
    fetch(leader3, F1, 1)
    with pytest.raises(RequestTimedOut):
        await leader3.wait_for_commit(appended, SHORT_POLL_S)


async def test_acks_all_fails_when_leadership_moves_while_waiting(
    leader3: PartitionReplica,
) -> None:
    appended = await leader3.append(records(1), acks="all")
    waiting = asyncio.create_task(leader3.wait_for_commit(appended, LONG_POLL_S))
    await asyncio.sleep(0)
    leader3.become(role(leader=F1, replicas=REPLICAS, leader_epoch=2, partition_epoch=2))
    with pytest.raises(LeaderNotAvailable):
        await asyncio.wait_for(waiting, WAKE_TIMEOUT_S)


# Found by the simulation: the produce route awaits an fsync between append and
# wait_for_commit. A waiter registered after leadership moved was never failed (the request
# hung to its timeout), and once the replica led again, the new epoch's high watermark
# acknowledged the write that its truncation as a follower had removed.
async def test_acks_all_fails_at_once_when_leadership_moved_before_the_wait(
    leader3: PartitionReplica,
) -> None:
    appended = await leader3.append(records(1), acks="all")
    leader3.become(role(leader=F1, replicas=REPLICAS, leader_epoch=2, partition_epoch=2))
    with pytest.raises(LeaderNotAvailable):
        await asyncio.wait_for(leader3.wait_for_commit(appended, LONG_POLL_S), WAKE_TIMEOUT_S)


async def test_acks_all_is_not_acknowledged_by_a_later_epoch_of_the_same_leader(
    leader3: PartitionReplica,
) -> None:
    appended = await leader3.append(records(1), acks="all")
    assert appended.leader_epoch == 1
    leader3.become(role(leader=F1, replicas=REPLICAS, leader_epoch=2, partition_epoch=2))
    await leader3.apply_follower_step(TruncateTo(0))  # F1 never had it
    leader3.become(
        role(replicas=REPLICAS, min_insync_replicas=2, leader_epoch=3, partition_epoch=3)
    )
    await leader3.append(records(2))  # other records at offset 0
    fetch(leader3, F1, 2, last_epoch=3, epoch=3)
    fetch(leader3, F2, 2, last_epoch=3, epoch=3)
    assert leader3.high_watermark == 2
    with pytest.raises(LeaderNotAvailable):
        await leader3.wait_for_commit(appended, LONG_POLL_S)


async def test_acks_all_fails_when_the_isr_shrank_below_min_insync_meanwhile(
    leader3: PartitionReplica,
) -> None:
    appended = await leader3.append(records(1), acks="all")
    waiting = asyncio.create_task(leader3.wait_for_commit(appended, LONG_POLL_S))
    await asyncio.sleep(0)
    fetch(leader3, F1, 1)
    leader3.become(role(replicas=REPLICAS, isr=(BROKER,), min_insync_replicas=2, partition_epoch=2))
    with pytest.raises(NotEnoughReplicas):
        await asyncio.wait_for(waiting, WAKE_TIMEOUT_S)


async def test_a_lagging_follower_is_proposed_out_of_the_isr_and_back_in(
    replicas: Replicas, leader3: PartitionReplica
) -> None:
    await leader3.append(records(2))
    fetch(leader3, F1, 2)
    replicas.clock.now_ms += LAG_MS + 1
    fetch(leader3, F1, 2)
    leader3.maybe_change_isr()
    assert replicas.proposals == [("t", (BROKER, F1))]
    leader3.become(
        role(replicas=REPLICAS, isr=(BROKER, F1), min_insync_replicas=2, partition_epoch=2)
    )
    fetch(leader3, F2, 2)  # caught up to the high watermark: it may rejoin
    assert replicas.proposals[-1] == ("t", REPLICAS)


async def test_a_refused_isr_change_stops_the_leader(leader3: PartitionReplica) -> None:
    leader3.fence_leadership("stale partition epoch")
    assert not leader3.is_leader
    with pytest.raises(LeaderNotAvailable):
        await leader3.append(records(1))
    leader3.become(role(replicas=REPLICAS, partition_epoch=3))
    assert leader3.is_leader


# Found by the simulation: the controller's refusal of a proposal can arrive after the
# metadata gave the leader a newer role; it stopped a leader that had already moved on, for
# good (nothing newer was coming).
async def test_a_refusal_about_a_role_already_left_does_not_stop_the_leader(
    leader3: PartitionReplica,
) -> None:
    proposed_in = leader3.role
    leader3.become(role(replicas=REPLICAS, min_insync_replicas=2, partition_epoch=2))
    leader3.fence_leadership("stale partition epoch", based_on=proposed_in)
    assert leader3.is_leader
    leader3.fence_leadership("stale partition epoch", based_on=leader3.role)
    assert not leader3.is_leader


async def test_a_failure_about_a_role_already_left_keeps_the_newer_proposal(
    replicas: Replicas, leader3: PartitionReplica
) -> None:
    proposed_in = leader3.role
    leader3.become(role(replicas=REPLICAS, min_insync_replicas=2, partition_epoch=2))
    replicas.clock.now_ms += LAG_MS + 1
    leader3.maybe_change_isr()  # a shrink, proposed in partition epoch 2
    assert replicas.proposals == [("t", (BROKER,))]
    leader3.isr_change_failed(based_on=proposed_in)  # the answer about epoch 1
    leader3.maybe_change_isr()
    assert replicas.proposals == [("t", (BROKER,))], "a second change while one is in flight"


# ---- roles fenced by epoch --------------------------------------------------------------


@pytest.mark.parametrize(
    ("leader_epoch", "partition_epoch", "taken"),
    [(4, 4, False), (5, 3, False), (3, 5, False), (5, 4, True), (5, 6, True), (6, 6, True)],
)
def test_a_role_older_than_the_current_one_is_refused(
    replica: PartitionReplica, leader_epoch: int, partition_epoch: int, taken: bool
) -> None:
    replica.become(role(leader_epoch=5, partition_epoch=4))
    assert (
        replica.become(
            role(
                leader=F1,
                replicas=REPLICAS,
                leader_epoch=leader_epoch,
                partition_epoch=partition_epoch,
            )
        )
        is taken
    )
    assert replica.is_leader is not taken


# ---- reading ---------------------------------------------------------------------------


async def test_read_stops_at_the_high_watermark_and_accepts_offsets_up_to_the_log_end(
    leader3: PartitionReplica,
) -> None:
    await leader3.append(records(5))
    fetch(leader3, F1, 3)
    fetch(leader3, F2, 3)
    assert offsets_of(leader3.read(0, max_records=10, max_bytes=1 << 20).records_json) == [0, 1, 2]
    assert leader3.read(4, max_records=10, max_bytes=1 << 20).record_count == 0
    with pytest.raises(OffsetOutOfRange) as info:
        leader3.read(6, max_records=10, max_bytes=1 << 20)
    assert info.value.details == {"log_start_offset": 0, "high_watermark": 3}


async def start_waiting(replica: PartitionReplica, offset: int) -> asyncio.Task[None]:
    task = asyncio.create_task(replica.wait_for_records(offset, LONG_POLL_S))
    await asyncio.sleep(0)
    assert not task.done(), "the long-poll returned before anything happened"
    return task


async def test_a_consumer_long_poll_wakes_on_the_high_watermark_not_the_log_end(
    leader3: PartitionReplica,
) -> None:
    task = await start_waiting(leader3, 0)
    await leader3.append(records(1))
    await asyncio.sleep(0)
    assert not task.done(), "appended but not committed"
    fetch(leader3, F1, 1)
    fetch(leader3, F2, 1)
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)


@pytest.mark.parametrize("new_leader", [F1, None], ids=["other-leader", "no-leader"])
async def test_a_consumer_long_poll_returns_when_leadership_is_taken_away(
    replica: PartitionReplica, new_leader: int | None
) -> None:
    task = await start_waiting(replica, 0)
    replica.become(role(leader=new_leader, replicas=REPLICAS, leader_epoch=2, partition_epoch=2))
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)


async def test_a_consumer_long_poll_returns_when_the_replica_closes(
    replica: PartitionReplica,
) -> None:
    task = await start_waiting(replica, 0)
    replica.close()
    await asyncio.wait_for(task, WAKE_TIMEOUT_S)


async def test_a_consumer_long_poll_returns_after_its_wait(replica: PartitionReplica) -> None:
    await replica.append(records(1))
    await asyncio.wait_for(replica.wait_for_records(1, SHORT_POLL_S), WAKE_TIMEOUT_S)
    assert replica.read(1, max_records=10, max_bytes=1 << 20).record_count == 0


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [(0, 0), (100, 0), (150, 1), (200, 1), (300, 2), (301, None)],
)
async def test_offset_for_timestamp_answers_below_the_high_watermark(
    replica: PartitionReplica, timestamp_ms: int, expected: int | None
) -> None:
    await replica.append([(100, b'"value":0'), (200, b'"value":1'), (300, b'"value":2')])
    assert replica.offset_for_timestamp(timestamp_ms) == expected


# ---- following -------------------------------------------------------------------------


async def test_a_follower_copies_the_leaders_batches_byte_for_byte(replicas: Replicas) -> None:
    leader = replicas.make("t", BROKER)
    follower = replicas.make("t", F1)
    leader.become(role(replicas=(BROKER, F1), leader_epoch=3))
    follower.become(role(replicas=(BROKER, F1), leader_epoch=3))
    await leader.append(records(2))
    await leader.append(records(3))
    offset, last_epoch = follower.fetch_position()
    answer = leader.answer_follower(F1, 3, offset, last_epoch, 1 << 20)
    assert await follower.apply_follower_step(Append(answer.records, answer.high_watermark))
    assert follower.log.log_end_offset == 5 and follower.log.latest_epoch == 3
    assert follower.log.read_raw(0, 1 << 20) == leader.log.read_raw(0, 1 << 20)
    # The follower's next fetch moves the leader's high watermark; the answer tells it.
    offset, last_epoch = follower.fetch_position()
    answer = leader.answer_follower(F1, 3, offset, last_epoch, 1 << 20)
    assert leader.high_watermark == 5
    await follower.apply_follower_step(Append(answer.records, answer.high_watermark))
    assert follower.high_watermark == 5


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


async def test_a_corrupt_fetched_answer_is_refused_before_anything_is_cut_or_written(
    replicas: Replicas,
) -> None:
    """The follower checks every batch of an answer before it acts on any: a corrupt last
    batch leaves the log as it was, neither cut back to the first batch's start (its
    boundaries differ from the leader's) nor added to."""
    leader = replicas.make("t", BROKER)
    follower = replicas.make("t", F1)
    for r in (leader, follower):
        r.become(role(replicas=(BROKER, F1)))
    follower.log.append(records(2), leader_epoch=1)  # offsets 0-1, one batch
    await leader.append(records(5))  # offsets 0-4, one batch: the follower would cut to 0
    await leader.append(records(3))
    before = follower.log.read_raw(0, 1 << 20)
    answer = leader.answer_follower(F1, 1, 0, -1, 1 << 20)
    with pytest.raises(CorruptBatchError):
        await follower.apply_follower_step(
            Append(_flip_last_byte(answer.records), answer.high_watermark)
        )
    assert follower.log.log_end_offset == 2
    assert follower.log.read_raw(0, 1 << 20) == before


# Found by the simulation: a replica elected leader records its epoch at its log end; when
# it lost leadership before writing in it, the new leader (which never had that epoch)
# answered DIVERGING at the follower's own log end, and the follower backed off for ever.
async def test_a_follower_cuts_off_an_epoch_it_announced_and_never_wrote_then_catches_up(
    replicas: Replicas,
) -> None:
    leader = replicas.make("t", BROKER)
    follower = replicas.make("t", F1)
    pair = (BROKER, F1)
    for r in (leader, follower):
        r.become(role(replicas=pair))
    await leader.append(records(2))
    answer = leader.answer_follower(F1, 1, 0, -1, 1 << 20)
    await follower.apply_follower_step(Append(answer.records, answer.high_watermark))
    follower.become(role(leader=F1, replicas=pair, leader_epoch=2, partition_epoch=2))
    assert follower.log.latest_epoch == 2  # announced at offset 2, never written
    leader.become(role(replicas=pair, leader_epoch=3, partition_epoch=3))
    follower.become(role(replicas=pair, leader_epoch=3, partition_epoch=3))
    await leader.append(records(1))
    for _ in range(3):  # DIVERGING and a cut of the epochs only, then the records
        offset, last_epoch = follower.fetch_position()
        answer = leader.answer_follower(F1, 3, offset, last_epoch, 1 << 20)
        await follower.apply_follower_step(plan_after_fetch(follower.log, offset, answer))
    assert follower.log.read_raw(0, 1 << 20) == leader.log.read_raw(0, 1 << 20)
    assert follower.log.epoch_entries() == leader.log.epoch_entries()


async def test_a_follower_keeps_its_producers_from_copied_batches(replicas: Replicas) -> None:
    leader = replicas.make("t", BROKER)
    follower = replicas.make("t", F1)
    leader.become(role(replicas=(BROKER, F1)))
    follower.become(role(replicas=(BROKER, F1)))
    await leader.append(records(2), producer=ProducerRef(9, 0, 0))
    answer = leader.answer_follower(F1, 1, 0, -1, 1 << 20)
    await follower.apply_follower_step(Append(answer.records, answer.high_watermark))
    # Promoted, it answers a retry of its predecessor's batch with the original offsets.
    follower.become(role(leader=F1, replicas=(BROKER, F1), leader_epoch=2, partition_epoch=2))
    retry = await follower.append(records(2), producer=ProducerRef(9, 0, 0))
    assert (retry.base_offset, retry.last_offset, retry.duplicate) == (0, 1, True)
    assert follower.log.log_end_offset == 2


async def test_truncation_runs_in_a_worker_and_keeps_the_high_watermark_within_the_log(
    replicas: Replicas,
) -> None:
    r = replicas.make()
    r.become(role())
    for _ in range(3):
        await r.append(records(2))
    r.become(role(leader=F1, replicas=(BROKER, F1), leader_epoch=2, partition_epoch=2))
    assert r.high_watermark == 6
    assert await r.apply_follower_step(TruncateTo(3))  # inside the second batch
    assert r.log.log_end_offset == 2 and r.high_watermark == 2
    assert await r.apply_follower_step(StartAt(40))
    assert (r.log.log_start_offset, r.log.log_end_offset) == (40, 40)


async def test_a_role_arriving_during_a_truncation_waits_for_it(replicas: Replicas) -> None:
    r = replicas.make()
    r.become(role())
    await r.append(records(4))
    r.become(role(leader=F1, replicas=(BROKER, F1), leader_epoch=2, partition_epoch=2))
    truncating = asyncio.create_task(r.apply_follower_step(TruncateTo(0)))
    await asyncio.sleep(0)
    r.become(role(replicas=(BROKER, F1), leader_epoch=3, partition_epoch=3))
    await asyncio.wait_for(truncating, WAKE_TIMEOUT_S)
    assert r.is_leader and r.log.latest_epoch == 3
    assert r.log.log_end_offset == 0


# Awaiting a done future never yields: with an inline runner, an append that had to roll
# once spun for ever in _log_idle, the roll's done-callback scheduled but never run.
@pytest.mark.timeout(10)
async def test_an_inline_runner_rolls_segments_without_spinning(replicas: Replicas) -> None:
    r = replicas.make(
        config=LogConfig(segment_bytes=300, retention_ms=None), run_blocking=run_inline
    )
    r.become(role())
    for _ in range(10):
        await r.append(records(3))
    assert r.log.log_end_offset == 30
    assert len(list(r.log.directory.glob("*.log"))) > 1


async def test_an_inline_runner_bounds_the_high_watermark_before_the_step_returns(
    replicas: Replicas,
) -> None:
    r = replicas.make(run_blocking=run_inline)
    r.become(role())
    await r.append(records(4))
    r.become(role(leader=F1, replicas=(BROKER, F1), leader_epoch=2, partition_epoch=2))
    assert await r.apply_follower_step(TruncateTo(0))
    assert (r.log.log_end_offset, r.high_watermark) == (0, 0)


# ---- idempotent producers ----------------------------------------------------------------


async def test_a_retried_batch_gets_its_original_offsets_and_is_not_written_again(
    replica: PartitionReplica,
) -> None:
    await replica.append(records(1))
    first = await replica.append(records(3), producer=ProducerRef(5, 0, 0))
    retry = await replica.append(records(3), producer=ProducerRef(5, 0, 0))
    assert (retry.base_offset, retry.last_offset) == (first.base_offset, first.last_offset)
    assert retry.duplicate and replica.log.log_end_offset == 4
    headers = list(replica.log.batches())
    assert (headers[1].producer_id, headers[1].base_sequence) == (5, 0)


async def test_a_sequence_gap_and_an_old_epoch_are_refused(replica: PartitionReplica) -> None:
    await replica.append(records(2), producer=ProducerRef(5, 1, 0))
    with pytest.raises(OutOfOrderSequence):
        await replica.append(records(1), producer=ProducerRef(5, 1, 3))
    with pytest.raises(InvalidProducerEpoch):
        await replica.append(records(1), producer=ProducerRef(5, 0, 2))
    assert replica.log.log_end_offset == 2


async def test_a_replaced_leader_that_never_wrote_in_its_epoch_follows_again(
    replicas: Replicas,
) -> None:
    """It recorded its epoch at its log end and lost leadership before appending: the new
    leader never had that epoch. Kafka drops such an empty epoch on a truncation to the log
    end; without that its fetches look divergent for ever."""
    a = replicas.make("t", BROKER)
    b = replicas.make("t", F1)
    both = (BROKER, F1)
    a.become(role(replicas=both, leader_epoch=1, partition_epoch=1))
    b.become(role(leader=BROKER, replicas=both, leader_epoch=1, partition_epoch=1))
    await a.append(records(3))
    offset, epoch = b.fetch_position()
    first = a.answer_follower(F1, 1, offset, epoch, 1 << 20)
    await b.apply_follower_step(Append(first.records, first.high_watermark))
    b.become(role(leader=F1, replicas=both, leader_epoch=2, partition_epoch=2))
    assert b.fetch_position() == (3, 2)
    a.become(role(replicas=both, leader_epoch=3, partition_epoch=3))
    b.become(role(replicas=both, leader_epoch=3, partition_epoch=3))

    for _ in range(3):  # diverging, then truncated to its end, then in step
        offset, epoch = b.fetch_position()
        answer = a.answer_follower(F1, 3, offset, epoch, 1 << 20)
        step = plan_after_fetch(b.log, offset, answer)
        await b.apply_follower_step(step)
    assert answer.verdict is FetchVerdict.READ
    assert b.fetch_position() == (3, 1)
    assert a.high_watermark == 3


# Found by the simulation: a follower's producer snapshot, written before it truncated a
# divergent tail and copied other batches past the snapshot's offset, was trusted on
# restart; elected, it answered a retry as a duplicate at offsets that held other records,
# and the write was acknowledged there.
def test_a_producer_snapshot_taken_before_a_truncation_is_not_trusted(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        log.append(records(1), leader_epoch=1, producer_id=5, producer_epoch=0, base_sequence=0)
        before = rebuild_producer_states(log)
        snapshot = ProducerStates.from_snapshot(before.to_snapshot(1, epoch_before(log, 1)))
        assert rebuild_producer_states(log, snapshot).check(5, 0, 0, 1) == Duplicate(0, 0)
        log.truncate_to(0)  # another leader's log, copied: a plain batch, then the retry
        log.append(records(1), leader_epoch=2)
        log.append(records(1), leader_epoch=2, producer_id=5, producer_epoch=0, base_sequence=0)
        assert rebuild_producer_states(log, snapshot).check(5, 0, 0, 1) == Duplicate(1, 1)
    finally:
        log.close()


def test_a_producer_snapshot_is_used_while_the_log_below_it_is_unchanged(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        log.append(records(2), leader_epoch=1)
        known = ProducerStates()  # a producer only the snapshot knows (its batches retained away)
        known.record(ProducerBatch(9, 0, 0, 0, 0, 0))
        log.append(records(1), leader_epoch=1, producer_id=5, producer_epoch=0, base_sequence=0)
        doc = orjson.loads(orjson.dumps(known.to_snapshot(2, epoch_before(log, 2))))
        states = rebuild_producer_states(log, ProducerStates.from_snapshot(doc))
        assert states.check(9, 0, 0, 1) == Duplicate(0, 0)
        assert states.check(5, 0, 0, 1) == Duplicate(2, 2)  # replayed after the snapshot
        no_epoch = ProducerStates.from_snapshot({**doc, "last_epoch": None})  # an old snapshot
        assert rebuild_producer_states(log, no_epoch).check(9, 0, 0, 1) is None
    finally:
        log.close()
