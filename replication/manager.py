"""The partitions this broker holds, kept in step with the metadata, and their replication.

`ReplicaManager` opens a log for every partition the metadata assigns to this broker, gives
each replica its role, runs one fetcher per leader broker for the partitions it follows,
sends the leaders' ISR changes to the controller through the function it is given
(Kafka's AlterPartitionManager), checkpoints high watermarks and producer state, and applies
retention. Opening, closing, deleting and checkpointing run in worker threads.

Deleting data is the dangerous part, so nothing is deleted on the word of one view of the
metadata: a log the metadata no longer assigns here (or one whose stored topic id names
another topic) is moved aside, renamed `*.deleted`, and removed only by `purge_deleted`,
which the broker calls with metadata read after one of its own commits (a read barrier).
A moved-aside log whose topic id is still assigned here is moved back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from raftka.metadata.errors import RaftkaError
from raftka.metadata.model import MetadataState, PartitionRecord, TopicConfig, TopicRecord
from raftka.replication.fetcher import FetchTransport, ReplicaFetcher
from raftka.replication.follower import FetchAnswer
from raftka.replication.leader import FetchVerdict
from raftka.replication.partition import (
    PartitionReplica,
    PartitionRole,
    epoch_before,
    rebuild_producer_states,
)
from raftka.replication.producer_state import ProducerSnapshot, ProducerStates
from raftka.replication.protocol import FetchRequest, PartitionAnswer
from raftka.storage.disk import DiskSpace, is_disk_full
from raftka.storage.file_pool import OpenFilePool
from raftka.storage.files import fsync_dir, write_durably, write_new_file
from raftka.storage.flusher import LogFlusher
from raftka.storage.log import LogConfig, PartitionLog

log = logging.getLogger(__name__)

TOPIC_ID_FILE = "partition.metadata"
HIGH_WATERMARK_FILE = "replication-offset-checkpoint"
PRODUCER_STATE_FILE = "producer-state.json"
DELETED_SUFFIX = ".deleted"
CHECKPOINT_VERSION = 0
# Logs are opened and closed this many at a time, in a pool of LOG_THREADS threads of their
# own: their fsyncs overlap (the disk commits them together), a new batch's folders share
# one fsync of the logs folder, and the worker threads of appends and rolls stay free.
LOG_BATCH = 256
LOG_THREADS = 4
# Codes with which the controller refuses an ISR change because our view of the partition is
# stale: someone else may lead it now, so the leader must stop acting as one.
STALE_LEADER_CODES = frozenset(
    {"STALE_PARTITION_EPOCH", "NOT_LEADER", "UNKNOWN_TOPIC", "UNKNOWN_PARTITION"}
)
# Codes with which an ISR change was refused for sure: the state machine rejected it, or it
# was never submitted. Any other failure (NO_CONTROLLER: no commit confirmed in time)
# leaves its outcome unknown: it may still commit.
REFUSED_CODES = frozenset({"INVALID_REQUEST", "LEADER_NOT_AVAILABLE"})

# A held fetch woken by records lets the event loop run this many passes before it is
# answered, so that the writes already received (read, not yet appended) go out in the same
# answer: under load a batch then no longer costs each follower its own round trip
# (docs/benchmarks.md, "Profile findings", section 9). Passes, not a timer: an idle broker's
# take microseconds (notes/hot-path.md measured fixed timers to hurt).
NEWS_GATHER_PASSES = 3

PartitionKey = tuple[str, int]
# (topic, partition, leader_epoch, partition_epoch, isr) -> the state after the commit.
AlterPartitionFn = Callable[[str, int, int, int, tuple[int, ...]], Awaitable[MetadataState]]
Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class ReplicationSettings:
    replica_lag_time_max_ms: int = 10_000
    replica_fetch_wait_max_ms: int = 500  # Kafka's replica.fetch.wait.max.ms
    replica_fetch_max_bytes: int = 1 << 20  # per partition, Kafka's replica.fetch.max.bytes
    replica_fetch_response_max_bytes: int = 10 << 20  # per answer
    replica_fetch_backoff_ms: int = 100
    high_watermark_checkpoint_interval_ms: int = 5_000  # Kafka's default
    request_timeout_ms: int = 30_000


def log_config_for(config: TopicConfig) -> LogConfig:
    return LogConfig(
        segment_bytes=config.segment_bytes,
        retention_ms=config.retention_ms,
        retention_bytes=config.retention_bytes,
    )


def role_of(topic: TopicRecord, index: int) -> PartitionRole:
    p: PartitionRecord = topic.partitions[index]
    return PartitionRole(
        leader=p.leader,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
        replicas=p.replicas,
        isr=p.isr,
        min_insync_replicas=topic.config.min_insync_replicas,
    )


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class ReplicaManager:
    def __init__(
        self,
        broker_id: int,
        logs_dir: Path,
        *,
        settings: ReplicationSettings,
        flusher: LogFlusher,
        alter_partition: AlterPartitionFn,
        transport: FetchTransport,
        clock: Clock = monotonic_ms,
        disk: DiskSpace | None = None,
        file_pool: OpenFilePool | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.settings = settings
        self._logs_dir = logs_dir
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._flusher = flusher
        self._alter_partition = alter_partition
        self._transport = transport
        self._clock = clock
        self._disk = disk
        # Every log's segment files share it: the broker's budget of open files.
        self.file_pool = file_pool or OpenFilePool()
        self._replicas: dict[PartitionKey, PartitionReplica] = {}
        self._fetchers: dict[int, ReplicaFetcher] = {}
        self._checkpointed_hw = _read_high_watermarks(logs_dir / HIGH_WATERMARK_FILE)
        self._snapshotted_at: dict[PartitionKey, int] = {}
        # Indexes kept up to date by every change, so that a change costs what it touches:
        # the open replicas per topic, the partitions assigned here per topic (open or
        # not: an offline log is still ours to move aside), the leader each follower
        # replica fetches from.
        self._by_topic: dict[str, set[int]] = {}
        self._assigned: dict[str, set[int]] = {}
        self._fetching_from: dict[PartitionKey, int] = {}
        # Partition records and replicas looked at while following the metadata (a metric,
        # and what the tests count: a change must not cost the whole cluster).
        self.partitions_visited = 0
        # The moved-aside logs' directory names: listing the logs folder would cost every
        # partition of this broker.
        self._aside: set[str] = {
            child.name for child in os.scandir(logs_dir) if child.name.endswith(DELETED_SUFFIX)
        }
        self._reconcile_lock = asyncio.Lock()
        self._log_threads = ThreadPoolExecutor(LOG_THREADS, thread_name_prefix="raftka-logs")
        self._roles_changed = asyncio.Event()
        self.fetches_waiting = 0  # followers' fetches parked here for news (a metric)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # ---- queries -------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionReplica | None:
        return self._replicas.get((topic, partition))

    def replicas(self) -> list[PartitionReplica]:
        return list(self._replicas.values())

    # ---- following the metadata ----------------------------------------------------------

    async def reconcile(self, state: MetadataState, *, complete: bool) -> None:
        """Opens, closes and gives roles to every replica as `state` says: at start-up and
        after a snapshot install. Visits every partition of the cluster. With
        `complete=False` (a snapshot install, which may carry an older state) nothing is
        closed or moved."""
        async with self._reconcile_lock:
            if self._closed:
                return
            self.partitions_visited += len(self._replicas)
            wanted = self._wanted(state.topics.values())
            self._assigned = {}
            for topic_name, index in wanted:
                self._assigned.setdefault(topic_name, set()).add(index)
            releasing = list(self._replicas) if complete else []
            await self._converge(wanted, releasing)
            if complete:
                await self._move_aside_orphans(set(wanted))
            for key in list(self._fetching_from):
                if key not in self._replicas:
                    self._place_in_fetcher(key, None)
            for key, replica in self._replicas.items():
                self._place_in_fetcher(key, replica)
            self._roles_did_change()

    async def reconcile_topics(self, state: MetadataState, names: Iterable[str]) -> None:
        """The same as `reconcile` (on a complete state), for the named topics only: what a
        TopicCreated or TopicDeleted asks. Visits the partitions of those topics only, and
        may move their logs aside."""
        async with self._reconcile_lock:
            if self._closed:
                return
            names = sorted(set(names))
            wanted = self._wanted(state.topics[n] for n in names if n in state.topics)
            releasing = [(n, i) for n in names for i in sorted(self._by_topic.get(n, ()))]
            self.partitions_visited += len(releasing)
            offline = [
                (n, i)
                for n in names
                for i in sorted(self._assigned.pop(n, ()))
                if (n, i) not in self._replicas and (n, i) not in wanted
            ]
            for topic_name, index in wanted:
                self._assigned.setdefault(topic_name, set()).add(index)
            await self._converge(wanted, releasing)
            for key in offline:
                await asyncio.get_running_loop().run_in_executor(
                    None, self._move_aside_if_present, key
                )

    def _wanted(self, topics: Iterable[TopicRecord]) -> dict[PartitionKey, TopicRecord]:
        wanted: dict[PartitionKey, TopicRecord] = {}
        for topic in topics:
            self.partitions_visited += len(topic.partitions)
            for p in topic.partitions:
                if self.broker_id in p.replicas:
                    wanted[(topic.name, p.partition)] = topic
        return wanted

    async def _converge(
        self, wanted: dict[PartitionKey, TopicRecord], releasing: Iterable[PartitionKey]
    ) -> None:
        """Releases the replicas of `releasing` that `wanted` does not hold (or holds for
        another topic id), then opens the missing replicas of `wanted` and gives every
        replica of `wanted` its role."""
        for key in releasing:
            topic = wanted.get(key)
            replica = self._replicas.get(key)
            if replica is not None and (topic is None or replica.topic_id != topic.topic_id):
                await self._release(key)
        for key, topic in wanted.items():
            replica = self._replicas.get(key)
            if replica is not None and replica.topic_id == topic.topic_id:
                replica.become(role_of(topic, key[1]))
                self._place_in_fetcher(key, replica)
        missing = [
            (key, topic) for key, topic in sorted(wanted.items()) if key not in self._replicas
        ]
        for first in range(0, len(missing), LOG_BATCH):
            batch = missing[first : first + LOG_BATCH]
            opened = await self._open_batch(batch)
            if self._closed:
                return
            for key, topic in batch:
                replica = opened.get(key)
                if replica is None:
                    continue
                self._replicas[key] = replica
                self._by_topic.setdefault(key[0], set()).add(key[1])
                replica.become(role_of(topic, key[1]))
                self._place_in_fetcher(key, replica)
            if opened:
                self._roles_did_change()  # the first batch's replicas need not wait for the last
        if wanted:
            self._roles_did_change()

    def partition_changed(self, topic: TopicRecord, index: int) -> bool:
        """One partition's leader or ISR changed: update that replica only. False when the
        replica is not open (yet): the caller should reconcile its topic."""
        self.partitions_visited += 1
        if self.broker_id not in topic.partitions[index].replicas:
            return True  # nothing of ours (moving replicas is not supported)
        key = (topic.name, index)
        replica = self._replicas.get(key)
        if replica is None or replica.topic_id != topic.topic_id:
            return False
        if replica.become(role_of(topic, index)):
            self._place_in_fetcher(key, replica)
            self._roles_did_change()
        return True

    async def wait_for_roles(self, timeout_s: float) -> None:
        """Returns at the next change of replicas or roles, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._roles_changed.wait(), timeout_s)

    def _roles_did_change(self) -> None:
        """Wakes whoever waits for roles to change."""
        changed, self._roles_changed = self._roles_changed, asyncio.Event()
        changed.set()

    def _place_in_fetcher(self, key: PartitionKey, replica: PartitionReplica | None) -> None:
        """Puts a follower replica in the fetcher of its leader, and only there (`None`, or
        a replica that does not follow, leaves every fetcher). A fetcher left with no
        partitions stops. Costs O(1): a role change moves one partition."""
        leader = None if replica is None else replica.role.leader
        if leader == self.broker_id:
            leader = None
        before = self._fetching_from.get(key)
        if before is not None and before != leader:
            del self._fetching_from[key]
            fetcher = self._fetchers.get(before)
            if fetcher is not None:
                fetcher.remove_partition(key)
                if not len(fetcher):
                    del self._fetchers[before]
                    fetcher.stop()
                    self._spawn(fetcher.join())  # hold the task until its cancellation is done
        if leader is None or replica is None:
            return
        fetcher = self._fetchers.get(leader)
        if fetcher is None:
            fetcher = self._fetchers[leader] = ReplicaFetcher(
                broker_id=self.broker_id,
                leader_id=leader,
                transport=self._transport,
                flusher=self._flusher,
                max_wait_ms=self.settings.replica_fetch_wait_max_ms,
                partition_max_bytes=self.settings.replica_fetch_max_bytes,
                response_max_bytes=self.settings.replica_fetch_response_max_bytes,
                backoff_ms=self.settings.replica_fetch_backoff_ms,
                request_timeout_ms=self.settings.request_timeout_ms,
            )
        fetcher.add_partition(key, replica)
        self._fetching_from[key] = leader

    # ---- ISR changes (the leader's side of AlterPartition) ---------------------------------

    def propose_isr(self, replica: PartitionReplica, isr: tuple[int, ...]) -> None:
        self._spawn(self._send_isr_change(replica, replica.role, isr))

    async def _send_isr_change(
        self, replica: PartitionReplica, role: PartitionRole, isr: tuple[int, ...]
    ) -> None:
        log.info(
            "%s-%d: asking the controller for ISR %s (was %s)",
            replica.topic,
            replica.partition,
            list(isr),
            list(role.isr),
        )
        try:
            state = await self._alter_partition(
                replica.topic, replica.partition, role.leader_epoch, role.partition_epoch, isr
            )
        except RaftkaError as exc:
            # The answer may come after the metadata already gave the replica a newer role:
            # it then concerns a state the replica left, and is ignored (based_on).
            if exc.code in STALE_LEADER_CODES:
                replica.fence_leadership(f"ISR change refused: {exc.message}", based_on=role)
            else:
                log.warning(
                    "%s-%d: ISR change failed (%s); will retry",
                    replica.topic,
                    replica.partition,
                    exc.message,
                )
                replica.isr_change_failed(
                    based_on=role, outcome_unknown=exc.code not in REFUSED_CODES
                )
            return
        topic = state.topics.get(replica.topic)
        if topic is not None and topic.topic_id == replica.topic_id:
            self.partition_changed(topic, replica.partition)
        else:
            replica.isr_change_failed(based_on=role)

    # ---- answering followers (this broker as leader) ---------------------------------------

    def answer_fetch(self, request: FetchRequest) -> tuple[list[PartitionAnswer], bool]:
        """Answers every partition of a follower's fetch; the flag says whether the follower
        learns anything from it (else the fetch may wait for news). A partition not open here
        is no news: a new partition's followers often ask before its leader has opened the
        log, and wait_for_news wakes them when it has (instead of their backing off)."""
        answers = []
        news = False
        budget = self.settings.replica_fetch_response_max_bytes
        for p in request.partitions:
            replica = self._replicas.get((p.topic, p.partition))
            if replica is None or replica.topic_id != p.topic_id:
                answer = FetchAnswer(FetchVerdict.NOT_LEADER, -1, -1, -1, None, b"")
                answers.append(PartitionAnswer(p.topic, p.partition, answer))
                continue
            answer = replica.answer_follower(
                request.replica_id,
                p.leader_epoch,
                p.fetch_offset,
                p.last_fetched_epoch,
                min(request.max_bytes, budget),
            )
            budget -= len(answer.records)
            news = news or answer.verdict is not FetchVerdict.READ or len(answer.records) > 0
            answers.append(PartitionAnswer(p.topic, p.partition, answer))
        return answers, news

    async def wait_for_news(self, request: FetchRequest, timeout_s: float) -> None:
        """Waits until one of the request's partitions has records past the follower's
        position, or stops being led here, or is opened here
        (it was not open yet: a new partition), or `timeout_s`; then NEWS_GATHER_PASSES
        passes of the event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self.fetches_waiting += 1
        try:
            while (left := deadline - loop.time()) > 0:
                if not await self._wait_once_for_news(request, left):
                    break
        finally:
            self.fetches_waiting -= 1
        for _ in range(NEWS_GATHER_PASSES):
            await asyncio.sleep(0)

    async def _wait_once_for_news(self, request: FetchRequest, timeout_s: float) -> bool:
        """One wait of wait_for_news; True when it must wait again: only the replicas or
        roles changed, and none of the request's missing partitions came."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watched: list[PartitionReplica] = []
        missing = []
        for p in request.partitions:
            replica = self._replicas.get((p.topic, p.partition))
            if replica is None or replica.topic_id != p.topic_id:
                missing.append(p)
                continue
            if replica.follower_has_news(p.fetch_offset):
                return False
            replica.add_fetch_waiter(waiter)
            watched.append(replica)
        waits: list[asyncio.Future[Any]] = [waiter]
        roles_changed = None
        if missing:
            roles_changed = asyncio.ensure_future(self._roles_changed.wait())
            waits.append(roles_changed)
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for replica in watched:
                replica.remove_fetch_waiter(waiter)
            if roles_changed is not None:
                roles_changed.cancel()
        if waiter in done or not done:
            return False
        return not any(
            (r := self._replicas.get((p.topic, p.partition))) is not None
            and r.topic_id == p.topic_id
            for p in missing
        )

    def check_isrs(self) -> None:
        """Kafka's isr-expiration task: leaders drop followers that stopped catching up."""
        for replica in self._replicas.values():
            replica.maybe_change_isr()

    # ---- opening and closing ---------------------------------------------------------------

    async def _open_batch(
        self, batch: Sequence[tuple[PartitionKey, TopicRecord]]
    ) -> dict[PartitionKey, PartitionReplica]:
        """Opens or creates the logs of `batch` in the log threads, at once; a log that cannot
        be opened is logged and left out (it stays offline). The new ones are durable, with
        one fsync of the logs folder for them all, before any is returned."""
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(
                loop.run_in_executor(self._log_threads, self._open_files, topic, key[1])
                for key, topic in batch
            ),
            return_exceptions=True,
        )
        opened: dict[PartitionKey, PartitionReplica] = {}
        created: list[PartitionLog] = []
        for (key, topic), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, OSError):
                    raise result
                log.error("cannot open the log of %s-%d; it stays offline", *key, exc_info=result)
                continue
            partition_log, producers, is_new = result
            if is_new:
                created.append(partition_log)
            opened[key] = self._replica(topic, key[1], partition_log, producers)
        if created:
            try:
                await loop.run_in_executor(self._log_threads, fsync_dir, self._logs_dir)
            except OSError as exc:
                log.error(
                    "cannot make %d new logs durable; they stay offline: %s", len(created), exc
                )
                doomed = set(created)
                for key in [k for k, r in opened.items() if r.log in doomed]:
                    opened.pop(key).log.abandon()
        return opened

    def _replica(
        self, topic: TopicRecord, index: int, partition_log: PartitionLog, producers: ProducerStates
    ) -> PartitionReplica:
        key = (topic.name, index)
        return PartitionReplica(
            topic.name,
            index,
            topic.topic_id,
            partition_log,
            broker_id=self.broker_id,
            high_watermark=self._checkpointed_hw.get(key, 0),
            producers=producers,
            replica_lag_time_max_ms=self.settings.replica_lag_time_max_ms,
            clock=self._clock,
            propose_isr=self.propose_isr,
            disk=self._disk,
        )

    def _open_files(
        self, topic: TopicRecord, index: int
    ) -> tuple[PartitionLog, ProducerStates, bool]:
        """The partition's log, its producer states, and whether the log is new: then the
        caller must fsync the logs folder before using it. Blocks on disk: a worker thread's
        job."""
        directory = self._dir((topic.name, index))
        id_file = directory / TOPIC_ID_FILE
        if directory.exists():
            stored = _read_topic_id(directory)
            if stored and stored != topic.topic_id:
                # A log of an earlier topic of the same name: keep it aside, never reuse it.
                self._move_aside(directory)
            elif not stored:
                # Never throw records away on a missing or empty marker (a power cut can
                # lose it, or leave it empty).
                log.warning(
                    "%s has no %s; adopting it for topic id %s",
                    directory,
                    TOPIC_ID_FILE,
                    topic.topic_id,
                )
        if not directory.exists():
            self._restore_moved_aside(directory, topic.topic_id)
        if not directory.exists():
            return self._create_files(directory, topic), ProducerStates(), True
        if not _read_topic_id(directory):
            write_durably(id_file, topic.topic_id.encode() + b"\n")
        partition_log = PartitionLog.open(directory, log_config_for(topic.config), self.file_pool)
        snapshot = _read_producer_snapshot(directory / PRODUCER_STATE_FILE)
        producers = rebuild_producer_states(partition_log, snapshot)
        return partition_log, producers, False

    def _create_files(self, directory: Path, topic: TopicRecord) -> PartitionLog:
        """A new partition's folder, topic id file and empty log, with two fsyncs: the id
        file's (written before any record, so a log's records never outlive the id that
        names their topic) and the folder's. No checkpoint file: a missing one reads as
        empty. The caller fsyncs the logs folder, once for every log it creates at once."""
        directory.mkdir()
        write_new_file(directory / TOPIC_ID_FILE, topic.topic_id.encode() + b"\n")
        partition_log = PartitionLog.create(directory, log_config_for(topic.config), self.file_pool)
        fsync_dir(directory)
        return partition_log

    async def _release(self, key: PartitionKey) -> None:
        """Stops a replica the metadata no longer assigns here and moves its log aside."""
        replica = self._replicas.pop(key)
        indexes = self._by_topic.get(key[0])
        if indexes is not None:
            indexes.discard(key[1])
            if not indexes:
                del self._by_topic[key[0]]
        replica.close()
        self._place_in_fetcher(key, None)
        self._roles_did_change()
        await replica.wait_idle()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._close_and_move_aside, replica.log)
        self._snapshotted_at.pop(key, None)

    def _close_and_move_aside(self, partition_log: PartitionLog) -> None:
        try:
            partition_log.close()
        except OSError:
            # Its files are what a crash leaves, which open recovers: move them aside
            # anyway, so a deleted topic's space is freed whatever the close met.
            log.exception("closing %s failed", partition_log.directory)
        self._move_aside(partition_log.directory)

    async def _move_aside_orphans(self, wanted: set[PartitionKey]) -> None:
        known = {self._dir(k).name for k in wanted}
        orphans = [
            child
            for child in self._logs_dir.iterdir()
            if child.is_dir()
            and not child.name.endswith(DELETED_SUFFIX)
            and child.name not in known
        ]
        if orphans:
            loop = asyncio.get_running_loop()
            for orphan in orphans:
                await loop.run_in_executor(None, self._move_aside, orphan)

    def _move_aside(self, directory: Path) -> None:
        aside = directory.with_name(f"{directory.name}.{uuid.uuid4().hex[:12]}{DELETED_SUFFIX}")
        log.warning("moving %s aside to %s", directory.name, aside.name)
        os.rename(directory, aside)
        self._aside.add(aside.name)
        fsync_dir(self._logs_dir)

    def _move_aside_if_present(self, key: PartitionKey) -> None:
        """Blocks on disk: a worker thread's job."""
        directory = self._dir(key)
        if directory.is_dir():
            self._move_aside(directory)

    def _restore_moved_aside(self, directory: Path, topic_id: str) -> None:
        """A view of the metadata that was wrong (stale) moved this log aside: take it back."""
        prefix = directory.name + "."
        for name in sorted(self._aside):
            if not name.startswith(prefix) or name.count(".") != directory.name.count(".") + 2:
                continue  # another partition's, maybe one whose name shares our prefix
            aside = self._logs_dir / name
            if _read_topic_id(aside) == topic_id:
                log.warning("moving %s back: topic id %s is assigned here", aside.name, topic_id)
                os.rename(aside, directory)
                self._aside.discard(name)
                fsync_dir(self._logs_dir)
                return

    async def purge_deleted(self, state: MetadataState) -> int:
        """Removes the moved-aside logs whose topic id the metadata no longer assigns here.
        `state` must be read after a commit of this broker's own (a read barrier)."""
        doomed = []
        for name in sorted(self._aside):
            aside = self._logs_dir / name
            topic_id = _read_topic_id(aside)
            partition = _partition_of(name)
            if (
                not topic_id
                or partition is None
                or not _assigned_here(state, self.broker_id, name, topic_id, partition)
            ):
                doomed.append(aside)
                self._aside.discard(name)
        if doomed:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _remove_trees, doomed)
        return len(doomed)

    def _dir(self, key: PartitionKey) -> Path:
        return self._logs_dir / f"{key[0]}-{key[1]}"

    # ---- background duties -------------------------------------------------------------

    async def apply_retention(self, now_ms: int) -> int:
        deleted = 0
        loop = asyncio.get_running_loop()
        for replica in list(self._replicas.values()):
            segments = replica.log.detach_expired_segments(now_ms)
            if segments:
                deleted += len(segments)
                await loop.run_in_executor(None, replica.log.delete_segments, segments)
        return deleted

    async def checkpoint(self) -> None:
        """High watermarks of every replica, and producer state where it changed."""
        hws = {key: r.high_watermark for key, r in self._replicas.items()}
        snapshots: list[tuple[PartitionKey, int, Path, bytes]] = []
        for key, replica in self._replicas.items():
            leo = replica.log_end_offset
            if len(replica.producers) and self._snapshotted_at.get(key) != leo:
                doc = replica.producers.to_snapshot(leo, epoch_before(replica.log, leo))
                path = replica.log.directory / PRODUCER_STATE_FILE
                snapshots.append((key, leo, path, orjson.dumps(doc)))
        written = await asyncio.get_running_loop().run_in_executor(
            None, self._write_checkpoints, hws, snapshots
        )
        self._snapshotted_at.update(written)

    def _write_checkpoints(
        self, hws: dict[PartitionKey, int], snapshots: list[tuple[PartitionKey, int, Path, bytes]]
    ) -> dict[PartitionKey, int]:
        """Writes the files; returns the snapshots written (key -> log end offset). On a
        full disk a file keeps its previous content (write_durably replaces it whole or
        not at all) and is tried again at the next checkpoint."""
        lines = [str(CHECKPOINT_VERSION), str(len(hws))]
        lines += [f"{t} {p} {hw}" for (t, p), hw in sorted(hws.items())]
        full = False
        try:
            write_durably(self._logs_dir / HIGH_WATERMARK_FILE, ("\n".join(lines) + "\n").encode())
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            full = True
        written = {}
        for key, leo, path, data in snapshots:
            try:
                write_durably(path, data)
            except FileNotFoundError:
                pass  # the log moved away meanwhile
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                full = True
            else:
                written[key] = leo
        if full:
            log.warning("the disk is full: checkpoints keep their previous content for now")
        return written

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stops fetching, checkpoints, and closes every log cleanly."""
        async with self._reconcile_lock:
            self._closed = True
            for fetcher in self._fetchers.values():
                fetcher.stop()
            await asyncio.gather(*(f.join() for f in self._fetchers.values()))
            self._fetchers.clear()
            for task in list(self._tasks):
                task.cancel()
            for replica in self._replicas.values():
                replica.close()
            for replica in self._replicas.values():
                await replica.wait_idle()
            try:
                await self.checkpoint()
            except OSError:
                log.exception("writing the checkpoints at shutdown failed")
            loop = asyncio.get_running_loop()
            logs = [r.log for r in self._replicas.values()]
            for first in range(0, len(logs), LOG_BATCH):
                await asyncio.gather(
                    *(
                        loop.run_in_executor(self._log_threads, _close_quietly, partition_log)
                        for partition_log in logs[first : first + LOG_BATCH]
                    )
                )
            self._replicas.clear()
            self._log_threads.shutdown(wait=False)


def _close_quietly(partition_log: PartitionLog) -> None:
    try:
        partition_log.close()
    except OSError:
        log.exception("closing %s failed", partition_log.directory)


def _remove_trees(paths: list[Path]) -> None:
    for path in paths:
        log.warning("removing %s: its topic is gone from the metadata", path.name)
        shutil.rmtree(path, ignore_errors=True)


def _read_topic_id(directory: Path) -> str:
    try:
        return (directory / TOPIC_ID_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return ""


def _assigned_here(
    state: MetadataState, broker_id: int, name: str, topic_id: str, partition: int
) -> bool:
    """Whether `state` assigns partition `partition` of topic id `topic_id` to `broker_id`;
    the topic is looked up by the name in the moved-aside directory's `name`."""
    base = name.removesuffix(DELETED_SUFFIX).rsplit(".", 1)[0]
    topic = state.topics.get(base.rsplit("-", 1)[0])
    if topic is None or topic.topic_id != topic_id or partition >= len(topic.partitions):
        return False
    return broker_id in topic.partitions[partition].replicas


def _partition_of(name: str) -> int | None:
    """The partition index in "<topic>-<partition>.<id>.deleted"."""
    base = name.removesuffix(DELETED_SUFFIX).rsplit(".", 1)[0]
    digits = base.rsplit("-", 1)[-1]
    return int(digits) if digits.isascii() and digits.isdigit() else None


def _read_high_watermarks(path: Path) -> dict[PartitionKey, int]:
    """Kafka's replication-offset-checkpoint; a missing or malformed file means no HW known."""
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return {}
    try:
        if int(lines[0]) != CHECKPOINT_VERSION or int(lines[1]) != len(lines) - 2:
            return {}
        out = {}
        for line in lines[2:]:
            topic, partition, hw = line.split(" ")
            out[(topic, int(partition))] = int(hw)
        return out
    except (IndexError, ValueError):
        log.warning("ignoring a malformed %s", path)
        return {}


def _read_producer_snapshot(path: Path) -> ProducerSnapshot | None:
    try:
        return ProducerStates.from_snapshot(orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, orjson.JSONDecodeError):
        log.warning("ignoring a malformed %s; replaying the log instead", path)
        return None
