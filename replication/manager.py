"""The partitions this broker holds, kept in step with the metadata.

`ReplicaManager.reconcile(state)` opens a log for every partition the metadata assigns to
this broker and sets each one's role (leader or follower, epochs, ISR). Deleting data is
the dangerous part, so it is narrow:
- a partition's log is deleted when its topic is gone from the state only if the caller
  says the state is complete (`delete_unknown=True`: at start-up after the registration
  barrier, and for ordinary committed changes; not for a snapshot install);
- a log whose stored topic id names another topic (the topic was deleted and created
  again under the same name) is wiped before the new topic uses the directory;
- a missing or empty topic-id marker is adopted, never a reason to delete.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from raftka.metadata.model import MetadataState, TopicConfig, TopicRecord
from raftka.replication.partition import PartitionReplica, PartitionRole
from raftka.storage.files import write_durably
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

    def reconcile(self, state: MetadataState, *, delete_unknown: bool) -> None:
        wanted: dict[PartitionKey, TopicRecord] = {
            (topic.name, p.partition): topic
            for topic in state.topics.values()
            for p in topic.partitions
            if self.broker_id in p.replicas
        }
        for key in list(self._replicas):
            if key not in wanted or self._topic_ids[key] != wanted[key].topic_id:
                self._release(key, delete=delete_unknown)
        # Roles first: a log that fails to open must not leave others acting on old roles.
        for key, topic in wanted.items():
            if (replica := self._replicas.get(key)) is not None:
                replica.become(_role(topic, key[1]))
        for key, topic in wanted.items():
            if key not in self._replicas:
                try:
                    self._open(topic, key[1]).become(_role(topic, key[1]))
                except OSError:
                    log.exception("cannot open the log of %s-%d; it stays offline", *key)
        if delete_unknown:
            self._remove_orphan_dirs(set(wanted))

    def _open(self, topic: TopicRecord, index: int) -> PartitionReplica:
        key = (topic.name, index)
        directory = self._dir(key)
        id_file = directory / TOPIC_ID_FILE
        if directory.exists():
            stored = id_file.read_text().strip() if id_file.exists() else ""
            if not stored:
                # Never delete records on a missing or empty marker (a power cut can
                # lose it, or leave it empty).
                log.warning(
                    "%s has no %s; adopting it for topic id %s",
                    directory,
                    TOPIC_ID_FILE,
                    topic.topic_id,
                )
            elif stored != topic.topic_id:
                # A log left by an earlier topic of the same name, deleted while we were down.
                shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if not id_file.exists() or not id_file.read_text().strip():
            write_durably(id_file, topic.topic_id.encode() + b"\n")
        partition_log = PartitionLog.open(directory, log_config_for(topic.config))
        replica = PartitionReplica(topic.name, index, partition_log, self.broker_id)
        self._replicas[key] = replica
        self._topic_ids[key] = topic.topic_id
        return replica

    def _release(self, key: PartitionKey, *, delete: bool) -> None:
        replica = self._replicas.pop(key)
        self._topic_ids.pop(key)
        replica.close()
        if delete:
            shutil.rmtree(self._dir(key), ignore_errors=True)

    def _remove_orphan_dirs(self, wanted: set[PartitionKey]) -> None:
        """Deletes the logs of partitions the (complete) state no longer assigns here;
        a wanted log that failed to open is kept."""
        known = {self._dir(k).name for k in wanted}
        for child in self._logs_dir.iterdir():
            if child.is_dir() and child.name not in known:
                shutil.rmtree(child, ignore_errors=True)

    def _dir(self, key: PartitionKey) -> Path:
        return self._logs_dir / f"{key[0]}-{key[1]}"

    def apply_retention(self, now_ms: int) -> int:
        deleted = 0
        for replica in self._replicas.values():
            expired = replica.log.detach_expired_segments(now_ms)
            # delete_segments fsyncs: it belongs in a worker thread (to come with replication).
            replica.log.delete_segments(expired)
            deleted += len(expired)
        return deleted

    def close(self) -> None:
        for replica in self._replicas.values():
            replica.close()
        self._replicas.clear()
        self._topic_ids.clear()


def _role(topic: TopicRecord, index: int) -> PartitionRole:
    p = topic.partitions[index]
    return PartitionRole(
        leader=p.leader,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
        isr=p.isr,
        min_insync_replicas=topic.config.min_insync_replicas,
    )
