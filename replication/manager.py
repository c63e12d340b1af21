"""The partitions this broker holds, kept in step with the metadata.

`ReplicaManager.reconcile(state)` opens a log for every partition the metadata assigns to
this broker, sets each one's role (leader or follower, epoch, ISR), and closes and deletes
the logs of topics that no longer exist (also those deleted while this broker was down,
recognised by the topic id stored beside each log). It runs on the event loop.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from raftka.metadata.model import MetadataState, TopicConfig, TopicRecord
from raftka.replication.partition import PartitionReplica, PartitionRole
from raftka.storage.log import LogConfig, PartitionLog

log = logging.getLogger(__name__)

TOPIC_ID_FILE = "partition.metadata"

PartitionKey = tuple[str, int]


def log_config_for(config: TopicConfig) -> LogConfig:
    return LogConfig(
        segment_bytes=config.segment_bytes,
        retention_ms=config.retention_ms,
        retention_bytes=config.retention_bytes,
    )


class ReplicaManager:
    def __init__(self, broker_id: int, logs_dir: Path) -> None:
        self.broker_id = broker_id
        self._logs_dir = logs_dir
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._replicas: dict[PartitionKey, PartitionReplica] = {}
        self._topic_ids: dict[PartitionKey, str] = {}

    def get(self, topic: str, partition: int) -> PartitionReplica | None:
        return self._replicas.get((topic, partition))

    def replicas(self) -> list[PartitionReplica]:
        return list(self._replicas.values())

    def reconcile(self, state: MetadataState) -> None:
        wanted: dict[PartitionKey, tuple[TopicRecord, int]] = {}
        for topic in state.topics.values():
            for p in topic.partitions:
                if self.broker_id in p.replicas:
                    wanted[(topic.name, p.partition)] = (topic, p.partition)
        for key in list(self._replicas):
            if key not in wanted or self._topic_ids[key] != wanted[key][0].topic_id:
                self._drop(key)
        for key, (topic, index) in wanted.items():
            replica = self._replicas.get(key) or self._open(topic, index)
            p = topic.partitions[index]
            replica.become(
                PartitionRole(
                    leader=p.leader,
                    leader_epoch=p.leader_epoch,
                    isr=p.isr,
                    min_insync_replicas=topic.config.min_insync_replicas,
                )
            )
        self._remove_orphan_dirs()

    def _open(self, topic: TopicRecord, index: int) -> PartitionReplica:
        key = (topic.name, index)
        directory = self._dir(key)
        id_file = directory / TOPIC_ID_FILE
        if directory.exists() and (
            not id_file.exists() or id_file.read_text().strip() != topic.topic_id
        ):
            # A log left by an earlier topic of the same name, deleted while we were down.
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if not id_file.exists():
            id_file.write_text(topic.topic_id + "\n")
        partition_log = PartitionLog.open(directory, log_config_for(topic.config))
        replica = PartitionReplica(topic.name, index, partition_log, self.broker_id)
        self._replicas[key] = replica
        self._topic_ids[key] = topic.topic_id
        return replica

    def _drop(self, key: PartitionKey) -> None:
        replica = self._replicas.pop(key)
        self._topic_ids.pop(key)
        replica.close()
        shutil.rmtree(self._dir(key), ignore_errors=True)

    def _remove_orphan_dirs(self) -> None:
        known = {self._dir(k).name for k in self._replicas}
        for child in self._logs_dir.iterdir():
            if child.is_dir() and child.name not in known:
                shutil.rmtree(child, ignore_errors=True)

    def _dir(self, key: PartitionKey) -> Path:
        return self._logs_dir / f"{key[0]}-{key[1]}"

    def apply_retention(self, now_ms: int) -> int:
        return sum(r.log.apply_retention(now_ms) for r in self._replicas.values())

    def close(self) -> None:
        for replica in self._replicas.values():
            replica.close()
        self._replicas.clear()
        self._topic_ids.clear()
