"""One broker process: wires the metadata quorum, the replicas and the broker's parts
(api/broker/): its lease, its session with the controller, the controller's duties, the
metadata follower, housekeeping loops, producer ids and topic administration.

Owns start-up order (HTTP first so /healthz answers, then the metadata quorum, then
registration), where partitions are led, and clean shutdown. Protocol rules live in
metadata/ and replication/; this module only calls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from raftka.api.broker.controller import ControllerDuties, new_command_id
from raftka.api.broker.controller_session import ControllerSession
from raftka.api.broker.housekeeping import Housekeeping
from raftka.api.broker.lease import BrokerLease
from raftka.api.broker.metadata_follower import MetadataFollower
from raftka.api.broker.open_files import default_max_open_files, open_files_limit
from raftka.api.broker.producer_ids import ProducerIdAllocator
from raftka.api.broker.replica_transport import HttpFetchTransport
from raftka.api.broker.shutdown_marker import ShutdownMarker
from raftka.api.broker.topic_admin import TopicAdmin
from raftka.api.settings import BrokerAddress, ClusterConfig, Settings
from raftka.metadata.commands import AlterPartition, Command
from raftka.metadata.digest import StateDigester
from raftka.metadata.errors import LeaderNotAvailable, UnknownPartition, UnknownTopic
from raftka.metadata.model import MetadataState, PartitionRecord, TopicRecord
from raftka.metadata.quorum import MetadataQuorum, RaftTiming
from raftka.metadata.state import Applied
from raftka.replication.manager import ReplicaManager, ReplicationSettings
from raftka.replication.partition import PartitionReplica
from raftka.storage.disk import DiskSpace
from raftka.storage.file_pool import OpenFilePool
from raftka.storage.flusher import FsyncPolicy, LogFlusher

log = logging.getLogger(__name__)

METADATA_WRITE_TIMEOUT_S = 5.0
LOCAL_LEADER_WAIT_S = 2.0
METADATA_POLL_S = 0.05  # how often a forwarded request looks again for a topic it names


@dataclass(frozen=True, slots=True)
class MetadataDigest:
    commit_index: int
    applied_index: int
    digest: str


@dataclass(frozen=True, slots=True)
class PartitionLocation:
    topic: TopicRecord
    partition: PartitionRecord


class Broker:
    def __init__(self, config: ClusterConfig, broker_id: int, data_dir: Path | None = None) -> None:
        self.config = config
        self.settings: Settings = config.settings
        self.address: BrokerAddress = config.broker(broker_id)
        self.broker_id = broker_id
        self.data_dir = config.broker_data_dir(broker_id, data_dir)
        self.incarnation_id = uuid.uuid4().hex
        self.flusher = LogFlusher(FsyncPolicy(self.settings.fsync), self.settings.fsync_interval_ms)
        self._transport = HttpFetchTransport(self.broker_url)
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.disk = DiskSpace(self.data_dir, s.disk_reserve_bytes)
        max_open_files = s.max_open_files or default_max_open_files(open_files_limit())
        log.info("broker %d keeps at most %d segment files open", broker_id, max_open_files)
        self.replicas = ReplicaManager(
            broker_id,
            self.data_dir / "logs",
            settings=ReplicationSettings(
                replica_lag_time_max_ms=s.replica_lag_time_max_ms,
                request_timeout_ms=s.request_timeout_ms,
            ),
            flusher=self.flusher,
            alter_partition=self._alter_partition,
            transport=self._transport,
            disk=self.disk,
            file_pool=OpenFilePool(max_open_files),
        )
        self.shutdown_marker = ShutdownMarker(self.data_dir, fsync_always=s.fsync == "always")
        self.quorum: MetadataQuorum | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._raft_to_broker = {b.raft: b.broker_id for b in config.brokers if b.raft}
        self._purge: asyncio.Task[None] | None = None
        self._clean_shutdown = True
        self._digester = StateDigester()
        self._digesting = asyncio.Lock()
        self.controller = ControllerDuties(broker_id, s, lambda: self.quorum, self.submit)
        self.metadata = MetadataFollower(
            self.replicas, self._latest_state, self.controller.heard_from
        )
        self.metadata.listeners.append(self.controller.follow)
        self.lease = BrokerLease(
            self.address, self.incarnation_id, s, self.submit, self._after_heartbeat
        )
        self._controller_session = ControllerSession(
            broker_id,
            self.incarnation_id,
            lambda: self.controller_id,
            self.broker_url,
            self.controller.controller_died,
        )
        self._housekeeping = Housekeeping(s, self.replicas, self.disk)
        self.producer_ids = ProducerIdAllocator(broker_id, self.submit)
        self.topics = TopicAdmin(self.submit)

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Starts the quorum and the loops; returns once the metadata is loaded (the HTTP
        server may already be answering /healthz with 503)."""
        loop = asyncio.get_running_loop()
        self.metadata.attach(loop)
        self.flusher.start()
        await loop.run_in_executor(None, self.disk.hold_reserve)
        self._clean_shutdown = await loop.run_in_executor(
            None, self.disk.with_room, self.shutdown_marker.begin
        )
        s = self.settings
        self.quorum = MetadataQuorum(
            self_address=self.address.raft,
            voter_addresses=[b.raft for b in self.config.voters if b.raft],
            data_dir=self.data_dir / "metadata",
            timing=RaftTiming(
                election_timeout_min_s=s.raft_election_timeout_min_ms / 1000,
                election_timeout_max_s=s.raft_election_timeout_max_ms / 1000,
                heartbeat_interval_s=s.raft_heartbeat_interval_ms / 1000,
                connection_retry_s=s.raft_connection_retry_ms / 1000,
            ),
            listener=self.metadata.applied_on_raft_thread,
            make_room=self.disk.release_reserve,
        )
        while not await loop.run_in_executor(None, self.quorum.wait_ready, 0.5):
            pass
        # pysyncobj calls a restarted node "ready" at its last *saved* commit index, which
        # can be stale. Our registration commits after every earlier entry and is applied
        # in order, so once it is answered the local state is complete: only then may we
        # act on it (reconciling a partial state would move live logs aside as orphans).
        await self.lease.register(clean_shutdown=self._clean_shutdown)
        self.metadata.complete = True
        # Heartbeats first: opening tens of thousands of logs outlasts the lease and the
        # session timeout, and a broker that stops heartbeating meanwhile is fenced.
        self._spawn(self.lease.heartbeat_loop(clean_shutdown=self._clean_shutdown))
        await self.replicas.reconcile(self.quorum.state, complete=True)
        self._spawn(self.metadata.reconcile_loop())
        self._spawn(self._controller_session.loop())
        self._spawn(self.controller.loop())
        self._spawn(self._housekeeping.retention_loop())
        self._spawn(self._housekeeping.checkpoint_loop())
        self._spawn(self._housekeeping.isr_loop())
        self._spawn(self._housekeeping.disk_loop())

    async def stop(self) -> None:
        if self._purge is not None:
            self._tasks.append(self._purge)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.flusher.stop()
        await self.replicas.close()
        await self._transport.close()
        if self.quorum is not None:
            quorum, self.quorum = self.quorum, None
            await asyncio.get_running_loop().run_in_executor(None, quorum.close)
            # Only a broker that got this far closed every log cleanly.
            await asyncio.get_running_loop().run_in_executor(None, self.shutdown_marker.end)

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    # -- metadata ----------------------------------------------------------

    @property
    def state(self) -> MetadataState:
        if self.quorum is None or not self.metadata.complete:
            return MetadataState.empty()
        return self.quorum.state

    def _latest_state(self) -> MetadataState | None:
        return None if self.quorum is None else self.quorum.state

    @property
    def ready(self) -> bool:
        return self.metadata.complete

    @property
    def has_lease(self) -> bool:
        return self.lease.held

    @property
    def controller_id(self) -> int | None:
        if self.quorum is None:
            return None
        leader = self.quorum.leader_address
        return None if leader is None else self._raft_to_broker.get(leader)

    @property
    def is_controller(self) -> bool:
        return self.controller.active

    async def submit(self, command: Command, *, resubmit: bool = True) -> Applied:
        if self.quorum is None:
            raise LeaderNotAvailable("the broker is starting")
        return await self.quorum.submit(command, METADATA_WRITE_TIMEOUT_S, resubmit=resubmit)

    async def metadata_digest(self) -> MetadataDigest:
        """The digest of the applied metadata state, with its applied and commit indexes.
        Computed only when asked, in a worker thread (the first one of a large state costs
        O(state)), and only for the records changed since the last one."""
        if self.quorum is None:
            raise LeaderNotAvailable("the broker is starting")
        commit_index = self.quorum.status().commit_index
        applied = self.quorum.applied
        digest = self._digester.cached(applied.state)
        if digest is None:
            async with self._digesting:
                loop = asyncio.get_running_loop()
                digest = await loop.run_in_executor(None, self._digester.digest, applied.state)
        return MetadataDigest(commit_index, applied.applied_index, digest)

    def _after_heartbeat(self) -> None:
        # Our heartbeat just committed, so the local state holds everything committed
        # before it: a read barrier, the only state moved-aside logs are deleted on.
        # Removing thousands of logs takes long: it runs beside the heartbeats, never in
        # front of the next one (one purge at a time).
        if self.quorum is not None and (self._purge is None or self._purge.done()):
            self._purge = asyncio.ensure_future(self._purge_deleted(self.quorum.state))

    async def _purge_deleted(self, state: MetadataState) -> None:
        try:
            await self.replicas.purge_deleted(state)
        except OSError:
            log.exception("removing moved-aside logs failed")

    # -- partitions ------------------------------------------------------------

    def locate(self, topic: str, partition: int) -> PartitionLocation:
        record = self.state.topics.get(topic)
        if record is None:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        if not 0 <= partition < len(record.partitions):
            raise UnknownPartition(
                f"topic {topic!r} has partitions 0..{len(record.partitions) - 1}, not {partition}"
            )
        return PartitionLocation(record, record.partitions[partition])

    async def locate_soon(
        self, topic: str, partition: int, *, forwarded: bool
    ) -> PartitionLocation:
        """`locate`, but a request another broker forwarded here waits up to
        LOCAL_LEADER_WAIT_S for a topic we do not know yet: that broker saw it created (the
        first write to a new topic often arrives before its creation is applied here)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCAL_LEADER_WAIT_S
        while True:
            try:
                return self.locate(topic, partition)
            except (UnknownTopic, UnknownPartition):
                remaining = deadline - loop.time()
                if not forwarded or remaining <= 0:
                    raise
            await self.replicas.wait_for_roles(min(remaining, METADATA_POLL_S))

    def local_leader(self, topic: str, partition: int) -> PartitionReplica | None:
        """The local replica if this broker leads the partition and may act as leader."""
        replica = self.replicas.get(topic, partition)
        if replica is None or not replica.is_leader or not self.has_lease:
            return None
        return replica

    async def local_leader_soon(
        self, topic: str, partition: int, *, forwarded: bool = False
    ) -> PartitionReplica | None:
        """The local leading replica, waiting up to LOCAL_LEADER_WAIT_S while it is about to
        lead: the metadata names this broker but the replica is not leading yet (its log is
        opening after a topic creation or a restart, or a role waits behind a truncation),
        or another broker forwarded the request here, having seen metadata we have not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCAL_LEADER_WAIT_S
        while True:
            replica = self.local_leader(topic, partition)
            if replica is not None:
                return replica
            location = self.locate(topic, partition)
            remaining = deadline - loop.time()
            named = location.partition.leader == self.broker_id
            if not (named or forwarded) or not self.has_lease or remaining <= 0:
                return None
            await self.replicas.wait_for_roles(remaining)

    async def local_offsets(self, topic: str) -> dict[str, list[int]]:
        """log_start_offset and high_watermark of the partitions of `topic` led here (waiting
        briefly for logs that are still opening, e.g. right after the topic's creation)."""
        offsets: dict[str, list[int]] = {}
        record = self.state.topics.get(topic)
        for p in record.partitions if record else ():
            if p.leader != self.broker_id:
                continue
            with contextlib.suppress(UnknownTopic, UnknownPartition):
                replica = await self.local_leader_soon(topic, p.partition)
                if replica is not None:
                    offsets[str(p.partition)] = [replica.log_start_offset, replica.high_watermark]
        return offsets

    async def _alter_partition(
        self,
        topic: str,
        partition: int,
        leader_epoch: int,
        partition_epoch: int,
        isr: tuple[int, ...],
    ) -> MetadataState:
        """The replica manager's way to the controller (Kafka's AlterPartitionManager)."""
        applied = await self.submit(
            AlterPartition(
                command_id=new_command_id(),
                topic=topic,
                partition=partition,
                leader=self.broker_id,
                leader_epoch=leader_epoch,
                partition_epoch=partition_epoch,
                isr=isr,
            )
        )
        return applied.state

    def broker_url(self, broker_id: int) -> str | None:
        record = self.state.brokers.get(broker_id)
        if record is not None:
            return record.url
        for b in self.config.brokers:
            if b.broker_id == broker_id:
                return b.url
        return None
