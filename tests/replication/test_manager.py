"""ReplicaManager.reconcile: which logs exist on disk, their roles, and when data is deleted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from raftka.metadata.model import (
    BrokerRecord,
    MetadataState,
    PartitionRecord,
    TopicConfig,
    TopicRecord,
)
from raftka.replication.manager import TOPIC_ID_FILE, ReplicaManager
from raftka.replication.partition import PartitionReplica, PartitionRole
from raftka.storage.errors import LogClosedError
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


@pytest.fixture
def manager(logs_dir: Path) -> Iterator[ReplicaManager]:
    manager = ReplicaManager(BROKER, logs_dir)
    yield manager
    manager.close()


def dirs(logs_dir: Path) -> set[str]:
    return {p.name for p in logs_dir.iterdir() if p.is_dir()}


def stored_topic_id(logs_dir: Path, name: str) -> str:
    return (logs_dir / name / TOPIC_ID_FILE).read_text().strip()


def held(manager: ReplicaManager, name: str, index: int = 0) -> PartitionReplica:
    replica = manager.get(name, index)
    assert replica is not None, f"{name}-{index} is not held"
    return replica


def append_values(replica: PartitionReplica, *values: int) -> None:
    replica.append([(1_000 + v, b'"key":null,"value":%d,"headers":{}' % v) for v in values])


def values(replica: PartitionReplica) -> list[int]:
    result = replica.read(replica.log_start_offset, max_records=1 << 20, max_bytes=1 << 20)
    return [r["value"] for r in orjson.loads(b"[" + result.records_json + b"]")]


# ---- which logs exist, with which roles -------------------------------------------------


@pytest.mark.parametrize("delete_unknown", [True, False])
def test_reconcile_opens_a_log_only_for_partitions_this_broker_replicates(
    manager: ReplicaManager, logs_dir: Path, delete_unknown: bool
) -> None:
    manager.reconcile(
        state(topic("a", (1, 2), (2, 3), (3, 1)), topic("b", (2, 3))),
        delete_unknown=delete_unknown,
    )
    assert sorted((r.topic, r.partition) for r in manager.replicas()) == [("a", 0), ("a", 2)]
    assert manager.get("a", 1) is None and manager.get("b", 0) is None
    assert dirs(logs_dir) == {"a-0", "a-2"}
    assert stored_topic_id(logs_dir, "a-0") == stored_topic_id(logs_dir, "a-2") == "id-a"


def test_roles_follow_the_state(manager: ReplicaManager) -> None:
    config = TopicConfig(min_insync_replicas=2)
    follower = with_partition(
        topic("a", (2, 1, 3), config=config),
        0,
        leader=2,
        isr=(2, 1),
        leader_epoch=4,
        partition_epoch=7,
    )
    manager.reconcile(state(follower), delete_unknown=True)
    replica = held(manager, "a")
    assert replica.role == PartitionRole(
        leader=2, leader_epoch=4, partition_epoch=7, isr=(2, 1), min_insync_replicas=2
    )
    assert not replica.is_leader

    leader = with_partition(follower, 0, leader=1, isr=(1,), leader_epoch=5, partition_epoch=8)
    manager.reconcile(state(leader), delete_unknown=True)
    assert held(manager, "a") is replica, "a role change keeps the open log"
    assert replica.role == PartitionRole(
        leader=1, leader_epoch=5, partition_epoch=8, isr=(1,), min_insync_replicas=2
    )
    assert replica.is_leader


def test_min_insync_replicas_follows_a_topic_config_change(manager: ReplicaManager) -> None:
    manager.reconcile(state(TOPIC_A), delete_unknown=True)
    changed = dataclasses.replace(TOPIC_A, config=TopicConfig(min_insync_replicas=2))
    manager.reconcile(state(changed), delete_unknown=True)
    assert held(manager, "a").role.min_insync_replicas == 2


# ---- deleting data ----------------------------------------------------------------------


def test_a_topic_gone_from_a_complete_state_has_its_log_deleted(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    manager.reconcile(state(TOPIC_A), delete_unknown=True)
    replica = held(manager, "a")
    append_values(replica, 1, 2)
    manager.reconcile(state(), delete_unknown=True)
    assert manager.get("a", 0) is None
    assert dirs(logs_dir) == set()
    with pytest.raises(LogClosedError):
        replica.log.read(0, max_bytes=1 << 20, max_records=10)


def test_a_topic_gone_from_an_incomplete_state_is_closed_but_kept_and_reopened_later(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    manager.reconcile(state(TOPIC_A), delete_unknown=True)
    replica = held(manager, "a")
    append_values(replica, 1, 2, 3)

    manager.reconcile(state(), delete_unknown=False)
    assert manager.get("a", 0) is None
    with pytest.raises(LogClosedError):
        replica.log.read(0, max_bytes=1 << 20, max_records=10)
    assert dirs(logs_dir) == {"a-0"}

    manager.reconcile(state(TOPIC_A), delete_unknown=False)
    assert values(held(manager, "a")) == [1, 2, 3]


def test_a_partition_moved_away_in_an_incomplete_state_is_kept(
    manager: ReplicaManager, logs_dir: Path
) -> None:
    manager.reconcile(state(TOPIC_A), delete_unknown=True)
    append_values(held(manager, "a"), 1)
    manager.reconcile(state(topic("a", (2, 3))), delete_unknown=False)
    assert manager.get("a", 0) is None
    assert dirs(logs_dir) == {"a-0"}
    manager.reconcile(state(TOPIC_A), delete_unknown=False)
    assert values(held(manager, "a")) == [1]


@pytest.mark.parametrize("delete_unknown", [True, False])
def test_a_same_name_topic_recreated_while_running_starts_from_an_empty_log(
    manager: ReplicaManager, logs_dir: Path, delete_unknown: bool
) -> None:
    manager.reconcile(state(TOPIC_A), delete_unknown=True)
    old = held(manager, "a")
    append_values(old, 1, 2)
    recreated = topic("a", (BROKER, 2), topic_id="id-a-2")
    manager.reconcile(state(recreated), delete_unknown=delete_unknown)
    new = held(manager, "a")
    assert new is not old
    assert (new.log_start_offset, new.high_watermark) == (0, 0)
    assert stored_topic_id(logs_dir, "a-0") == "id-a-2"


@pytest.mark.parametrize("delete_unknown", [True, False])
def test_a_directory_left_by_an_earlier_same_name_topic_is_wiped_before_use(
    logs_dir: Path, delete_unknown: bool
) -> None:
    first = ReplicaManager(BROKER, logs_dir)
    first.reconcile(state(TOPIC_A), delete_unknown=True)
    append_values(held(first, "a"), 1, 2)
    first.close()

    second = ReplicaManager(BROKER, logs_dir)
    recreated = topic("a", (BROKER, 2), topic_id="id-a-2")
    second.reconcile(state(recreated), delete_unknown=delete_unknown)
    try:
        assert held(second, "a").high_watermark == 0
        assert values(held(second, "a")) == []
        assert stored_topic_id(logs_dir, "a-0") == "id-a-2"
    finally:
        second.close()


@pytest.mark.parametrize("delete_unknown", [True, False])
def test_a_directory_without_partition_metadata_is_adopted_with_its_records(
    logs_dir: Path, delete_unknown: bool
) -> None:
    first = ReplicaManager(BROKER, logs_dir)
    first.reconcile(state(TOPIC_A), delete_unknown=True)
    append_values(held(first, "a"), 1, 2)
    first.close()
    (logs_dir / "a-0" / TOPIC_ID_FILE).unlink()

    second = ReplicaManager(BROKER, logs_dir)
    second.reconcile(state(TOPIC_A), delete_unknown=delete_unknown)
    try:
        assert values(held(second, "a")) == [1, 2]
        assert stored_topic_id(logs_dir, "a-0") == "id-a"
    finally:
        second.close()


def test_a_directory_with_an_empty_partition_metadata_is_adopted_with_its_records(
    logs_dir: Path,
) -> None:
    first = ReplicaManager(BROKER, logs_dir)
    first.reconcile(state(TOPIC_A), delete_unknown=True)
    append_values(held(first, "a"), 1, 2)
    first.close()
    (logs_dir / "a-0" / TOPIC_ID_FILE).write_text("")

    second = ReplicaManager(BROKER, logs_dir)
    second.reconcile(state(TOPIC_A), delete_unknown=False)
    try:
        assert values(held(second, "a")) == [1, 2]
    finally:
        second.close()


@pytest.mark.parametrize(
    "orphan",
    ["gone-0", "a-1", "a-7"],
    ids=["topic-not-in-state", "partition-not-assigned-here", "partition-not-in-state"],
)
def test_an_orphan_directory_is_removed_only_when_the_state_is_complete(
    manager: ReplicaManager, logs_dir: Path, orphan: str
) -> None:
    orphan_log = PartitionLog.open(logs_dir / orphan, LogConfig())
    orphan_log.append([(1_000, b'"value":0')])
    orphan_log.close()
    current = state(topic("a", (BROKER, 2), (2, 3)))

    manager.reconcile(current, delete_unknown=False)
    assert dirs(logs_dir) == {"a-0", orphan}

    manager.reconcile(current, delete_unknown=True)
    assert dirs(logs_dir) == {"a-0"}


# ---- restart ----------------------------------------------------------------------------


def test_records_survive_close_and_a_new_manager_on_the_same_directory(logs_dir: Path) -> None:
    current = state(topic("a", (BROKER, 2), (2, BROKER)))
    first = ReplicaManager(BROKER, logs_dir)
    first.reconcile(current, delete_unknown=True)
    append_values(held(first, "a", 0), 1, 2, 3)
    append_values(held(first, "a", 0), 4)
    first.close()
    assert first.replicas() == []

    second = ReplicaManager(BROKER, logs_dir)
    second.reconcile(current, delete_unknown=True)
    try:
        assert values(held(second, "a", 0)) == [1, 2, 3, 4]
        assert held(second, "a", 0).high_watermark == 4
        assert held(second, "a", 1).high_watermark == 0
    finally:
        second.close()
