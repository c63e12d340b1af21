"""ReplicaManager: which logs exist on disk, their roles, what is moved aside and when it is
deleted, checkpoints, and restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from raftka.metadata.errors import error_for_code
from raftka.metadata.model import (
    BrokerRecord,
    MetadataState,
    PartitionRecord,
    TopicConfig,
    TopicRecord,
)
from raftka.replication.leader import FetchVerdict
from raftka.replication.manager import (
    DELETED_SUFFIX,
    HIGH_WATERMARK_FILE,
    LOG_BATCH,
    NEWS_GATHER_PASSES,
    TOPIC_ID_FILE,
    ReplicaManager,
    ReplicationSettings,
)
from raftka.replication.partition import PartitionReplica, PartitionRole
from raftka.replication.producer_state import ProducerRef
from raftka.replication.protocol import FetchRequest, PartitionAnswer, PartitionFetch
from raftka.storage.batch import split_batches
from raftka.storage.errors import LogClosedError
from raftka.storage.flusher import FsyncPolicy, LogFlusher
from raftka.storage.log import CLEAN_SHUTDOWN_FILE as LOG_CLEAN_SHUTDOWN_FILE
from raftka.storage.log import LogConfig, PartitionLog

BROKER = 1
BROKERS = (1, 2, 3)


def topic(
    name: str,
    *assignment: tuple[int, ...],
    topic_id: str | None = None,
    config: TopicConfig | None = None,
) -> TopicRecord:
    """A topic whose partition i has replicas assignment[i], all in sync, led by the first."""
    return TopicRecord(
        name=name,
        topic_id=topic_id or f"id-{name}",
        config=config or TopicConfig(),
        partitions=tuple(
            PartitionRecord(
                partition=i,
                replicas=replicas,
                isr=replicas,
                leader=replicas[0],
                leader_epoch=0,
                partition_epoch=0,
            )
            for i, replicas in enumerate(assignment)
        ),
    )


def state(*topics: TopicRecord) -> MetadataState:
    brokers = {
        b: BrokerRecord(b, f"http://b{b}", "inc-1", raft_voter=True, fenced=False) for b in BROKERS
    }
    result = dataclasses.replace(
        MetadataState.empty(), brokers=brokers, topics={t.name: t for t in topics}
    )
    result.check_invariants()
    return result


def with_partition(t: TopicRecord, index: int, **changes: object) -> TopicRecord:
    partitions = list(t.partitions)
    partitions[index] = dataclasses.replace(partitions[index], **changes)
    return dataclasses.replace(t, partitions=tuple(partitions))


TOPIC_A = topic("a", (BROKER, 2))


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


async def no_alter_partition(*args: object) -> MetadataState:
    raise AssertionError(f"no ISR change expected: {args}")


async def no_transport(
    leader: int, request: FetchRequest, timeout_s: float
) -> list[PartitionAnswer]:
    raise ConnectionError("no other broker in these tests")


def new_manager(logs_dir: Path) -> ReplicaManager:
    return ReplicaManager(
        BROKER,
        logs_dir,
        settings=ReplicationSettings(),
        flusher=LogFlusher(FsyncPolicy.NEVER, 50),
        alter_partition=no_alter_partition,
        transport=no_transport,
    )


@pytest.fixture
async def manager(logs_dir: Path) -> AsyncIterator[ReplicaManager]:
    manager = new_manager(logs_dir)
    yield manager
    await manager.close()


def dirs(logs_dir: Path) -> set[str]:
    return {p.name for p in logs_dir.iterdir() if p.is_dir()}


def live_dirs(logs_dir: Path) -> set[str]:
    return {name for name in dirs(logs_dir) if not name.endswith(DELETED_SUFFIX)}


def moved_aside(logs_dir: Path) -> list[str]:
    return sorted(name.split(".")[0] for name in dirs(logs_dir) if name.endswith(DELETED_SUFFIX))


def stored_topic_id(logs_dir: Path, name: str) -> str:
    return (logs_dir / name / TOPIC_ID_FILE).read_text().strip()


def held(manager: ReplicaManager, name: str, index: int = 0) -> PartitionReplica:
    replica = manager.get(name, index)
    assert replica is not None, f"{name}-{index} is not held"
    return replica


async def append_values(replica: PartitionReplica, *values: int) -> None:
    await replica.append([(1_000 + v, b'"key":null,"value":%d,"headers":{}' % v) for v in values])


def values(replica: PartitionReplica) -> list[int]:
    result = replica.log.read(replica.log_start_offset, max_records=1 << 20, max_bytes=1 << 20)
    return [r["value"] for r in orjson.loads(b"[" + result.records_json + b"]")]


# ---- which logs exist, with which roles -------------------------------------------------


@pytest.mark.parametrize("complete", [True, False])
async def test_reconcile_opens_a_log_only_for_partitions_this_broker_replicates(
    manager: ReplicaManager, logs_dir: Path, complete: bool
) -> None:
    await manager.reconcile(
        state(topic("a", (1, 2), (2, 3), (3, 1)), topic("b", (2, 3))), complete=complete
    )
    assert sorted((r.topic, r.partition) for r in manager.replicas()) == [("a", 0), ("a", 2)]
    assert manager.get("a", 1) is None and manager.get("b", 0) is None
    assert dirs(logs_dir) == {"a-0", "a-2"}
    assert stored_topic_id(logs_dir, "a-0") == stored_topic_id(logs_dir, "a-2") == "id-a"


async def test_roles_follow_the_state(manager: ReplicaManager) -> None:
    config = TopicConfig(min_insync_replicas=2)
    follower = with_partition(
        topic("a", (2, 1, 3), config=config),
        0,
        leader=2,
        isr=(2, 1),
        leader_epoch=4,
        partition_epoch=7,
    )
    await manager.reconcile(state(follower), complete=True)
    replica = held(manager, "a")
    assert replica.role == PartitionRole(
        leader=2,
        leader_epoch=4,
        partition_epoch=7,
        replicas=(2, 1, 3),
        isr=(2, 1),
        min_insync_replicas=2,
    )
    assert not replica.is_leader and replica.is_follower

    leader = with_partition(follower, 0, leader=1, isr=(1,), leader_epoch=5, partition_epoch=8)
    assert manager.partition_changed(leader, 0)
    assert held(manager, "a") is replica, "a role change keeps the open log"
    assert replica.role.leader == 1 and replica.role.isr == (1,)
    assert replica.is_leader


async def test_an_older_role_from_a_stale_state_is_ignored(manager: ReplicaManager) -> None:
    newer = with_partition(TOPIC_A, 0, leader=2, isr=(1, 2), leader_epoch=3, partition_epoch=3)
    await manager.reconcile(state(newer), complete=True)
    await manager.reconcile(state(TOPIC_A), complete=False)
    assert held(manager, "a").role.leader_epoch == 3
    assert not held(manager, "a").is_leader


async def test_min_insync_replicas_follows_a_topic_config_change(manager: ReplicaManager) -> None:
    await manager.reconcile(state(TOPIC_A), complete=True)
    changed = dataclasses.replace(TOPIC_A, config=TopicConfig(min_insync_replicas=2))
    await manager.reconcile(state(changed), complete=True)
    assert held(manager, "a").role.min_insync_replicas == 2


# ---- moving aside and deleting ---------------------------------------------------------------


async def test_a_topic_gone_from_a_complete_state_is_moved_aside_then_purged(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    await manager.reconcile(state(TOPIC_A), complete=True)
    replica = held(manager, "a")
    await append_values(replica, 1, 2)
    await manager.reconcile(state(), complete=True)
    assert manager.get("a", 0) is None
    assert live_dirs(logs_dir) == set() and moved_aside(logs_dir) == ["a-0"]
    with pytest.raises(LogClosedError):
        replica.log.read(0, max_bytes=1 << 20, max_records=10)
    assert await manager.purge_deleted(state()) == 1
    assert dirs(logs_dir) == set()


async def test_a_moved_aside_log_whose_topic_comes_back_is_moved_back(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    await manager.reconcile(state(TOPIC_A), complete=True)
    await append_values(held(manager, "a"), 1, 2, 3)
    await manager.reconcile(state(), complete=True)  # a view that was wrong
    assert await manager.purge_deleted(state(TOPIC_A)) == 0, "purge trusts only its own state"
    await manager.reconcile(state(TOPIC_A), complete=True)
    assert values(held(manager, "a")) == [1, 2, 3]
    assert moved_aside(logs_dir) == []


async def test_a_topic_gone_from_an_incomplete_state_is_kept_open(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    await manager.reconcile(state(TOPIC_A), complete=True)
    replica = held(manager, "a")
    await append_values(replica, 1, 2, 3)
    await manager.reconcile(state(), complete=False)
    assert held(manager, "a") is replica
    assert dirs(logs_dir) == {"a-0"}


async def test_a_same_name_topic_recreated_while_running_starts_from_an_empty_log(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    await manager.reconcile(state(TOPIC_A), complete=True)
    old = held(manager, "a")
    await append_values(old, 1, 2)
    recreated = topic("a", (BROKER, 2), topic_id="id-a-2")
    await manager.reconcile(state(recreated), complete=True)
    new = held(manager, "a")
    assert new is not old
    assert (new.log_start_offset, new.log_end_offset, new.high_watermark) == (0, 0, 0)
    assert stored_topic_id(logs_dir, "a-0") == "id-a-2"
    assert moved_aside(logs_dir) == ["a-0"]


@pytest.mark.parametrize("complete", [True, False])
async def test_a_directory_left_by_an_earlier_same_name_topic_is_moved_aside_before_use(
    logs_dir: Path, complete: bool
) -> None:
    first = new_manager(logs_dir)
    await first.reconcile(state(TOPIC_A), complete=True)
    await append_values(held(first, "a"), 1, 2)
    await first.close()

    second = new_manager(logs_dir)
    recreated = topic("a", (BROKER, 2), topic_id="id-a-2")
    await second.reconcile(state(recreated), complete=complete)
    try:
        assert values(held(second, "a")) == []
        assert stored_topic_id(logs_dir, "a-0") == "id-a-2"
        assert moved_aside(logs_dir) == ["a-0"]
    finally:
        await second.close()


@pytest.mark.parametrize("marker", ["missing", "empty"])
async def test_a_directory_without_a_topic_id_is_adopted_with_its_records(
    logs_dir: Path, marker: str
) -> None:
    first = new_manager(logs_dir)
    await first.reconcile(state(TOPIC_A), complete=True)
    await append_values(held(first, "a"), 1, 2)
    await first.close()
    if marker == "missing":
        (logs_dir / "a-0" / TOPIC_ID_FILE).unlink()
    else:
        (logs_dir / "a-0" / TOPIC_ID_FILE).write_text("")

    second = new_manager(logs_dir)
    await second.reconcile(state(TOPIC_A), complete=True)
    try:
        assert values(held(second, "a")) == [1, 2]
        assert stored_topic_id(logs_dir, "a-0") == "id-a"
    finally:
        await second.close()


@pytest.mark.parametrize(
    "orphan",
    ["gone-0", "a-1", "a-7"],
    ids=["topic-not-in-state", "partition-not-assigned-here", "partition-not-in-state"],
)
async def test_an_orphan_directory_is_moved_aside_only_when_the_state_is_complete(
    manager: ReplicaManager, logs_dir: Path, orphan: str
) -> None:
    orphan_log = PartitionLog.open(logs_dir / orphan, LogConfig())
    orphan_log.append([(1_000, b'"value":0')])
    orphan_log.close()
    current = state(topic("a", (BROKER, 2), (2, 3)))

    await manager.reconcile(current, complete=False)
    assert dirs(logs_dir) == {"a-0", orphan}

    await manager.reconcile(current, complete=True)
    assert live_dirs(logs_dir) == {"a-0"} and moved_aside(logs_dir) == [orphan]
    await manager.purge_deleted(current)
    assert dirs(logs_dir) == {"a-0"}


# ---- ISR changes -------------------------------------------------------------------------


async def test_a_stale_refusal_answered_after_the_newer_role_does_not_stop_the_leader(
    logs_dir: Path,
) -> None:
    """Found by the simulation: the metadata of the controller's own change (here it fenced
    broker 2) and the refusal of the leader's proposal race; the refusal came second and
    stopped the leader for good."""
    now_ms = [1_000]
    before = topic("a", (BROKER, 2))
    after = with_partition(before, 0, isr=(BROKER,), partition_epoch=1)
    managers: list[ReplicaManager] = []

    async def alter_partition(*args: object) -> MetadataState:
        managers[0].partition_changed(after, 0)  # the metadata arrives first
        raise error_for_code("STALE_PARTITION_EPOCH", "a-0 is at partition_epoch 1")

    manager = ReplicaManager(
        BROKER,
        logs_dir,
        settings=ReplicationSettings(),
        flusher=LogFlusher(FsyncPolicy.NEVER, 50),
        alter_partition=alter_partition,
        transport=no_transport,
        clock=lambda: now_ms[0],
    )
    managers.append(manager)
    try:
        await manager.reconcile(state(before), complete=True)
        replica = held(manager, "a")
        now_ms[0] += ReplicationSettings().replica_lag_time_max_ms + 1
        manager.check_isrs()  # broker 2 never fetched: propose (BROKER,)
        for _ in range(5):
            await asyncio.sleep(0)
        assert replica.role.partition_epoch == 1
        assert replica.is_leader
    finally:
        await manager.close()


@pytest.mark.parametrize(
    ("code", "pending_after"),
    [
        ("NO_CONTROLLER", (BROKER,)),  # no commit confirmed: it may still commit
        ("INVALID_REQUEST", None),  # rejected by the state machine: nothing committed
        ("LEADER_NOT_AVAILABLE", None),  # never submitted (the broker is starting)
    ],
)
async def test_an_isr_change_stays_pending_while_its_outcome_is_unknown(
    logs_dir: Path, code: str, pending_after: tuple[int, ...] | None
) -> None:
    now_ms = [1_000]

    async def alter_partition(*args: object) -> MetadataState:
        raise error_for_code(code, "no answer")

    manager = ReplicaManager(
        BROKER,
        logs_dir,
        settings=ReplicationSettings(),
        flusher=LogFlusher(FsyncPolicy.NEVER, 50),
        alter_partition=alter_partition,
        transport=no_transport,
        clock=lambda: now_ms[0],
    )
    try:
        await manager.reconcile(state(topic("a", (BROKER, 2))), complete=True)
        now_ms[0] += ReplicationSettings().replica_lag_time_max_ms + 1
        manager.check_isrs()  # broker 2 never fetched: propose (BROKER,)
        for _ in range(5):
            await asyncio.sleep(0)
        leader = held(manager, "a").leader_state
        assert leader is not None and leader.pending_isr == pending_after
    finally:
        await manager.close()


# ---- restart ----------------------------------------------------------------------------


async def test_records_high_watermarks_and_producers_survive_a_restart(logs_dir: Path) -> None:
    current = state(topic("a", (BROKER,), (BROKER,)))
    first = new_manager(logs_dir)
    await first.reconcile(current, complete=True)
    await append_values(held(first, "a", 0), 1, 2, 3)
    await held(first, "a", 0).append(
        [(1_000, b'"key":null,"value":4,"headers":{}')], producer=ProducerRef(8, 0, 0)
    )
    await first.close()
    assert first.replicas() == []
    assert (logs_dir / HIGH_WATERMARK_FILE).exists()

    second = new_manager(logs_dir)
    await second.reconcile(current, complete=True)
    try:
        replica = held(second, "a", 0)
        assert values(replica) == [1, 2, 3, 4]
        assert replica.high_watermark == 4
        assert held(second, "a", 1).high_watermark == 0
        retry = await replica.append(
            [(1_000, b'"key":null,"value":4,"headers":{}')], producer=ProducerRef(8, 0, 0)
        )
        assert (retry.base_offset, retry.duplicate) == (3, True)
    finally:
        await second.close()


# ---- metadata work per change: counted, not timed ---------------------------------------

BIG_PARTITIONS = 5000
OURS_EVERY = 500  # every 500th partition of the big topic is replicated here


def big_topic() -> TopicRecord:
    return topic(
        "big",
        *[(BROKER, 2) if i % OURS_EVERY == 0 else (2, 3) for i in range(BIG_PARTITIONS)],
    )


async def test_a_small_topic_created_and_deleted_next_to_a_big_one_visits_its_own_partitions(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    big = big_topic()
    await manager.reconcile(state(big), complete=True)
    assert manager.partitions_visited >= BIG_PARTITIONS, "start-up looks at everything once"
    assert len(manager.replicas()) == BIG_PARTITIONS // OURS_EVERY

    manager.partitions_visited = 0
    small = topic("small", (BROKER, 2), (2, BROKER), (2, 3))
    await manager.reconcile_topics(state(big, small), ["small"])
    assert held(manager, "small", 0).is_leader and held(manager, "small", 1).is_follower
    assert manager.get("small", 2) is None
    assert manager.partitions_visited <= 2 * len(small.partitions)

    manager.partitions_visited = 0
    moved = with_partition(small, 1, leader=BROKER, isr=(2, BROKER), leader_epoch=1)
    assert manager.partition_changed(moved, 1)
    assert held(manager, "small", 1).is_leader
    assert manager.partitions_visited == 1

    manager.partitions_visited = 0
    await manager.reconcile_topics(state(big), ["small"])
    assert manager.get("small", 0) is None and manager.get("small", 1) is None
    assert moved_aside(logs_dir) == ["small-0", "small-1"]
    assert manager.partitions_visited <= 2 * len(small.partitions)
    assert await manager.purge_deleted(state(big)) == 2
    assert moved_aside(logs_dir) == []
    assert len(manager.replicas()) == BIG_PARTITIONS // OURS_EVERY, "the big topic stays"


async def test_a_topic_reconcile_moves_a_follower_between_fetchers_and_stops_empty_ones(
    manager: ReplicaManager,
) -> None:
    followed = topic("f", (2, BROKER))
    await manager.reconcile_topics(state(followed), ["f"])
    assert set(manager._fetchers) == {2}
    await manager.reconcile_topics(state(), ["f"])
    assert manager._fetchers == {}, "a fetcher with nothing to fetch stops"


async def test_a_topic_deleted_and_created_again_under_its_name_starts_afresh(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    first = topic("t", (BROKER, 2), topic_id="id-1")
    await manager.reconcile_topics(state(first), ["t"])
    await append_values(held(manager, "t"), 1, 2)
    second = topic("t", (BROKER, 2), topic_id="id-2")
    await manager.reconcile_topics(state(second), ["t"])  # both changes seen at once
    assert held(manager, "t").topic_id == "id-2" and values(held(manager, "t")) == []
    assert moved_aside(logs_dir) == ["t-0"]
    assert await manager.purge_deleted(state(second)) == 1


async def test_a_new_topics_logs_cost_two_fsyncs_each_and_one_of_the_logs_folder_per_batch(
    logs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating a log fsyncs its topic id file and its folder, and the logs folder once per
    batch of LOG_BATCH new logs, before any replica is handed out; it writes no checkpoint
    or index file. A clean stop fsyncs each log's segment and folder (for its marker)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    manager = new_manager(logs_dir)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    count = LOG_BATCH + 2
    many = topic("many", *[(BROKER,)] * count)
    await manager.reconcile_topics(state(many), ["many"])
    assert len(manager.replicas()) == count and all(r.is_leader for r in manager.replicas())
    logs_folder = os.path.realpath(logs_dir)
    assert synced.count(logs_folder) == 2, "one fsync of the logs folder per batch"
    assert len(synced) == 2 * count + 2
    for index in (0, count - 1):
        folder = logs_dir / f"many-{index}"
        assert sorted(os.listdir(folder)) == ["00000000000000000000.log", TOPIC_ID_FILE]
        assert stored_topic_id(logs_dir, f"many-{index}") == "id-many"

    synced.clear()
    await manager.close()
    assert len([p for p in synced if p.endswith(".log")]) == count
    assert len(synced) == 2 * count + 2  # and the high watermark checkpoint, and its folder
    assert sorted(os.listdir(logs_dir / "many-0")) == [
        "00000000000000000000.log",
        LOG_CLEAN_SHUTDOWN_FILE,
        TOPIC_ID_FILE,
    ]


async def test_a_fetch_for_a_partition_not_open_here_yet_waits_until_it_is(
    manager: ReplicaManager,
) -> None:
    """A new partition's follower may fetch before its leader has opened the log. The fetch
    then waits for the log, however long the follower allows (here an hour), instead of
    being answered NOT_LEADER at once, which made the follower back off
    replica_fetch_backoff_ms before its first records."""
    new = topic("new", (BROKER, 2))
    request = FetchRequest(
        replica_id=2,
        max_wait_ms=3_600_000,
        max_bytes=1 << 20,
        partitions=(PartitionFetch("new", "id-new", 0, 0, 0, -1),),
    )
    _, news = manager.answer_fetch(request)
    assert not news, "a partition not open here is no news"
    fetch = asyncio.ensure_future(manager.wait_for_news(request, 3600))
    other = topic("other", (BROKER, 2))
    await manager.reconcile_topics(state(other), ["other"])  # another change: still waiting
    await asyncio.sleep(0)
    assert not fetch.done() and manager.fetches_waiting == 1
    await manager.reconcile_topics(state(other, new), ["new"])
    await asyncio.wait_for(fetch, 60)  # woken by the log's opening, not by the hour
    [answer], _ = manager.answer_fetch(request)
    assert answer.answer.verdict is FetchVerdict.READ
    assert manager.fetches_waiting == 0


async def test_a_partition_followed_during_a_long_poll_is_fetched_at_once(logs_dir: Path) -> None:
    """A leader holds a fetch with no news up to max_wait_ms: a partition that joins the
    fetcher meanwhile must not wait for that answer. The held request is dropped (its
    connection closed) and a new one names the partition at once."""
    requests: list[FetchRequest] = []
    dropped: list[FetchRequest] = []
    asked = asyncio.Event()

    async def held_transport(
        leader: int, request: FetchRequest, timeout_s: float
    ) -> list[PartitionAnswer]:
        requests.append(request)
        asked.set()
        try:
            await asyncio.Event().wait()  # a long poll: nothing new at the leader
        except asyncio.CancelledError:
            dropped.append(request)
            raise
        raise AssertionError("unreachable")

    manager = ReplicaManager(
        BROKER,
        logs_dir,
        settings=ReplicationSettings(),
        flusher=LogFlusher(FsyncPolicy.NEVER, 50),
        alter_partition=no_alter_partition,
        transport=held_transport,
    )
    first, second = topic("f1", (2, BROKER)), topic("f2", (2, BROKER))
    try:
        await manager.reconcile_topics(state(first), ["f1"])
        await asyncio.wait_for(asked.wait(), 60)
        asked.clear()
        await manager.reconcile_topics(state(first, second), ["f2"])
        await asyncio.wait_for(asked.wait(), 60)
        assert [[p.topic for p in r.partitions] for r in requests] == [["f1"], ["f1", "f2"]]
        assert dropped == requests[:1] and manager._fetchers[2].requests_dropped == 1
    finally:
        await manager.close()


def follower_fetch(replica_id: int, offset: int) -> FetchRequest:
    return FetchRequest(
        replica_id=replica_id,
        max_wait_ms=3_600_000,
        max_bytes=1 << 20,
        partitions=(PartitionFetch("a", "id-a", 0, 0, offset, 0 if offset else -1),),
    )


async def test_a_higher_high_watermark_alone_does_not_answer_a_held_fetch(
    manager: ReplicaManager,
) -> None:
    """Followers learn the high watermark with their next records (docs/replication.md):
    a caught-up follower's fetch waits, though the high watermark moved past what it knows,
    and is answered by the next records, which carry the new high watermark."""
    replicated = topic("a", (BROKER, 2, 3))
    await manager.reconcile_topics(state(replicated), ["a"])
    leader = held(manager, "a")
    await append_values(leader, 1, 2)
    for follower in (2, 3):
        [answer], news = manager.answer_fetch(follower_fetch(follower, 0))
        assert news and answer.answer.records
    # Follower 2 reports its end first: the high watermark waits for follower 3.
    [answer], news = manager.answer_fetch(follower_fetch(2, 2))
    assert not news and answer.answer.high_watermark == 0
    held_fetch = asyncio.ensure_future(manager.wait_for_news(follower_fetch(2, 2), 3600))
    await asyncio.sleep(0)
    manager.answer_fetch(follower_fetch(3, 2))  # follower 3 reports: the high watermark moves
    assert leader.high_watermark == 2
    # A woken fetch ends within microseconds; this one must still be waiting after 0.2 s.
    done, _ = await asyncio.wait({held_fetch}, timeout=0.2)
    assert not done, "a high watermark alone woke the held fetch"
    [answer], news = manager.answer_fetch(follower_fetch(2, 2))
    assert not news and answer.answer.high_watermark == 2  # told when it asks, not pushed
    await append_values(leader, 3)
    await asyncio.wait_for(held_fetch, 60)  # the next records wake it
    [answer], news = manager.answer_fetch(follower_fetch(2, 2))
    assert news and answer.answer.records


async def test_a_woken_fetch_carries_the_writes_that_land_within_its_gather_passes(
    manager: ReplicaManager,
) -> None:
    """A held fetch woken by one write is answered NEWS_GATHER_PASSES loop passes later (as
    the replica fetch route answers it), with the writes that landed by then: under load a
    batch does not cost each follower its own round trip."""
    await manager.reconcile_topics(state(topic("a", (BROKER, 2, 3))), ["a"])
    leader = held(manager, "a")

    async def fetch_as_the_route_does() -> list[PartitionAnswer]:
        await manager.wait_for_news(follower_fetch(2, 0), 3600)
        answers, _ = manager.answer_fetch(follower_fetch(2, 0))
        return answers

    async def write_after(passes: int, value: int) -> None:
        for _ in range(passes):
            await asyncio.sleep(0)
        await append_values(leader, value)

    held_fetch = asyncio.ensure_future(fetch_as_the_route_does())
    await asyncio.sleep(0)  # it is waiting
    await append_values(leader, 1)  # wakes it
    # Writes received meanwhile append one per pass from now on.
    later = [
        asyncio.ensure_future(write_after(passes, 2 + passes))
        for passes in range(2 * NEWS_GATHER_PASSES)
    ]
    [answer] = await asyncio.wait_for(held_fetch, 60)
    await asyncio.gather(*later)
    # Without the passes it carries the waking write and the one in the same pass.
    assert len(split_batches(answer.answer.records)) > NEWS_GATHER_PASSES
