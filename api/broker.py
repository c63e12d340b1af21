"""One broker process: wires the metadata quorum, the replicas and the background loops.

Owns start-up order (HTTP first so /healthz answers, then the metadata quorum, then
registration), the broker's lease (its own heartbeats committing), its session with the
controller (a killed broker's closed connection gets it fenced fast), the controller's
duties when this broker is the Raft leader, and clean shutdown. Protocol rules live in
metadata/ and replication/; this module only calls them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from raftka.api.open_files import default_max_open_files, open_files_limit
from raftka.api.replica_transport import HttpFetchTransport
from raftka.api.settings import BrokerAddress, ClusterConfig, Settings
from raftka.api.shutdown_marker import ShutdownMarker
from raftka.metadata.commands import (
    AllocateProducerIds,
    AlterPartition,
    BrokerHeartbeat,
    Command,
    CreateTopic,
    DeleteTopic,
    RegisterBroker,
)
from raftka.metadata.controller import (
    BrokerLiveness,
    PreferredLeaderWatch,
    fence_commands,
    fence_continuations,
)
from raftka.metadata.digest import StateDigester
from raftka.metadata.errors import (
    LeaderNotAvailable,
    RaftkaError,
    UnknownPartition,
    UnknownTopic,
)
from raftka.metadata.events import (
    BrokerHeartbeatReceived,
    PartitionChanged,
    ProducerIdsAllocated,
    TopicCreated,
    TopicDeleted,
)
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
CONTROLLER_TICK_S = 0.25
REGISTER_RETRY_S = 0.5
PRODUCER_ID_BLOCK_SIZE = 1000
SESSION_RETRY_S = 0.1
LOCAL_LEADER_WAIT_S = 2.0
# How often the disk's free space is read to make the reserve file again once space is back.
DISK_CHECK_INTERVAL_S = 1.0
METADATA_POLL_S = 0.05  # how often a forwarded request looks again for a topic it names
SESSION_PATH = "/internal/brokers/{broker_id}/session"
# The last bytes of a session whose controller stepped down (or stopped cleanly).
SESSION_CLEAN_END = b"end\n"
# Codes with which the quorum says "register again" (we restarted, or were forgotten).
REREGISTER_CODES = frozenset({"UNKNOWN_BROKER", "STALE_BROKER_INCARNATION"})


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
        self._metadata_ready = False
        self._lease_renewed_at = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._liveness = BrokerLiveness(
            s.broker_session_timeout_ms, controller_id=broker_id, track_sessions=True
        )
        self._was_controller = False
        self._producer_ids: collections.deque[int] = collections.deque()
        self._raft_to_broker = {b.raft: b.broker_id for b in config.brokers if b.raft}
        # (broker id, when): our session with that controller broke without a clean end.
        self._controller_lost: tuple[int, int] | None = None
        # What the metadata changes ask of the replicas, done by `_reconcile_loop` on the
        # latest state: a full reconcile (snapshot install), else the topics named here.
        self._reconcile_wanted = asyncio.Event()
        self._reconcile_full = False
        self._reconcile_complete = True
        self._reconcile_topics: set[str] = set()
        self._preferred_leaders = PreferredLeaderWatch()
        self._purge: asyncio.Task[None] | None = None
        self._clean_shutdown = True
        # Called on the loop, in commit order, with each applied command's state and events
        # (`reset` for a snapshot install): the group coordinator follows the metadata so.
        self.metadata_listeners: list[Callable[[MetadataState, tuple[Any, ...], bool], None]] = []
        self._digester = StateDigester()
        self._digesting = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Starts the quorum and the loops; returns once the metadata is loaded (the HTTP
        server may already be answering /healthz with 503)."""
        self._loop = asyncio.get_running_loop()
        self.flusher.start()
        await self._loop.run_in_executor(None, self.disk.hold_reserve)
        self._clean_shutdown = await self._loop.run_in_executor(
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
            listener=self._on_metadata_thread,
            make_room=self.disk.release_reserve,
        )
        while not await self._loop.run_in_executor(None, self.quorum.wait_ready, 0.5):
            pass
        # pysyncobj calls a restarted node "ready" at its last *saved* commit index, which
        # can be stale. Our registration commits after every earlier entry and is applied
        # in order, so once it is answered the local state is complete: only then may we
        # act on it (reconciling a partial state would move live logs aside as orphans).
        await self._register()
        self._metadata_ready = True
        # Heartbeats first: opening tens of thousands of logs outlasts the lease and the
        # session timeout, and a broker that stops heartbeating meanwhile is fenced.
        self._spawn(self._heartbeat_loop())
        await self.replicas.reconcile(self.quorum.state, complete=True)
        self._spawn(self._reconcile_loop())
        self._spawn(self._session_loop())
        self._spawn(self._controller_loop())
        self._spawn(self._retention_loop())
        self._spawn(self._checkpoint_loop())
        self._spawn(self._isr_loop())
        self._spawn(self._disk_loop())

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
        if self.quorum is None or not self._metadata_ready:
            return MetadataState.empty()
        return self.quorum.state

    @property
    def ready(self) -> bool:
        return self._metadata_ready

    @property
    def has_lease(self) -> bool:
        """True while our heartbeats commit: a broker cut off from the quorum for a
        session timeout may already be fenced and replaced, so it stops leading. The
        lease is timed from when the heartbeat was *sent* and ends one heartbeat interval
        early, so it runs out before the controller (which heard it later) can fence us."""
        s = self.settings
        lease_ms = s.broker_session_timeout_ms - s.broker_heartbeat_interval_ms
        return (time.monotonic() - self._lease_renewed_at) * 1000 < lease_ms

    @property
    def controller_id(self) -> int | None:
        if self.quorum is None:
            return None
        leader = self.quorum.leader_address
        return None if leader is None else self._raft_to_broker.get(leader)

    @property
    def is_controller(self) -> bool:
        return self.quorum is not None and self.quorum.is_leader

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

    def _on_metadata_thread(
        self, state: MetadataState, events: tuple[Any, ...], reset: bool
    ) -> None:
        loop = self._loop
        if loop is None:
            return
        # The time of the apply, not of the loop's turn: a heartbeat is heard when it
        # commits, however busy the loop is.
        applied_ms = int(time.monotonic() * 1000)
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(self._on_metadata, state, events, reset, applied_ms)

    def _on_metadata(
        self, state: MetadataState, events: tuple[Any, ...], reset: bool, applied_ms: int
    ) -> None:
        """Runs on the loop, in commit order, and costs what the change touched (KRaft's
        metadata delta): a partition's leader or ISR change updates that replica alone, a
        topic created or deleted reconciles that topic alone. A broker's fencing,
        unfencing or registration changes nothing of ours but the partitions it moved,
        which come as their own events. Only a snapshot install reconciles everything."""
        for listener in self.metadata_listeners:
            listener(state, events, reset)
        self._preferred_leaders.follow(state, events, reset)
        if reset:
            # A snapshot install may carry an older state (shared/notes/pysyncobj.md, bug 2):
            # act on its roles (epoch-fenced) but move nothing aside on its word.
            self._want_full_reconcile(complete=False)
            return
        for event in events:
            if isinstance(event, BrokerHeartbeatReceived):
                self._liveness.heard_from(event.broker_id, applied_ms)
            elif isinstance(event, PartitionChanged):
                topic = state.topics.get(event.topic)
                handled = topic is None or self.replicas.partition_changed(topic, event.partition)
                if self._metadata_ready and not handled:
                    self._want_topic_reconcile(event.topic)
            elif isinstance(event, TopicCreated | TopicDeleted):
                self._want_topic_reconcile(event.name)

    def _want_full_reconcile(self, *, complete: bool) -> None:
        self._reconcile_full = True
        self._reconcile_complete = complete
        self._reconcile_wanted.set()

    def _want_topic_reconcile(self, name: str) -> None:
        self._reconcile_topics.add(name)
        self._reconcile_wanted.set()

    async def _reconcile_loop(self) -> None:
        """Reconciles, one at a time, on the latest state (changes coalesce): a full one
        when a snapshot was installed, else the topics that were created or deleted."""
        while True:
            await self._reconcile_wanted.wait()
            self._reconcile_wanted.clear()
            if self.quorum is None:
                continue
            full, self._reconcile_full = self._reconcile_full, False
            topics, self._reconcile_topics = self._reconcile_topics, set()
            state = self.quorum.state
            try:
                if full:
                    await self.replicas.reconcile(state, complete=self._reconcile_complete)
                elif topics:
                    await self.replicas.reconcile_topics(state, topics)
            except Exception:
                log.exception("reconciling the replicas with the metadata failed")

    # -- background loops ------------------------------------------------------

    async def _register(self) -> None:
        """Registers this incarnation, retrying until the quorum answers."""
        command = RegisterBroker(
            command_id=f"register-{self.broker_id}-{self.incarnation_id}",
            broker_id=self.broker_id,
            url=self.address.url,
            incarnation_id=self.incarnation_id,
            raft_voter=self.address.raft is not None,
            clean_shutdown=self._clean_shutdown,
        )
        while True:
            sent_at = time.monotonic()
            try:
                await self.submit(command)
            except RaftkaError as exc:
                log.warning("broker %d registration failed: %s", self.broker_id, exc.message)
                await asyncio.sleep(REGISTER_RETRY_S)
                continue
            self._lease_renewed_at = sent_at
            log.info(
                "broker %d registered (%s shutdown before)",
                self.broker_id,
                "clean" if self._clean_shutdown else "unclean",
            )
            return

    async def _heartbeat_loop(self) -> None:
        interval_s = self.settings.broker_heartbeat_interval_ms / 1000
        heartbeat = BrokerHeartbeat(
            command_id="", broker_id=self.broker_id, incarnation_id=self.incarnation_id
        )
        while True:
            await asyncio.sleep(interval_s)
            sent_at = time.monotonic()
            try:
                await self.submit(heartbeat)
            except RaftkaError as exc:
                log.warning("broker %d heartbeat failed: %s", self.broker_id, exc.message)
                if exc.code in REREGISTER_CODES:
                    await self._register()
                continue
            self._lease_renewed_at = sent_at
            # Our heartbeat just committed, so the local state holds everything committed
            # before it: a read barrier, the only state moved-aside logs are deleted on.
            # Removing thousands of logs takes long: it runs beside the heartbeats, never
            # in front of the next one (one purge at a time).
            if self.quorum is not None and (self._purge is None or self._purge.done()):
                self._purge = asyncio.ensure_future(self._purge_deleted(self.quorum.state))

    async def _purge_deleted(self, state: MetadataState) -> None:
        try:
            await self.replicas.purge_deleted(state)
        except OSError:
            log.exception("removing moved-aside logs failed")

    async def _session_loop(self) -> None:
        """Keeps one connection open to the controller: when this process dies the kernel
        closes it at once and the controller fences us within a second; a paused process
        keeps it open, so only the session timeout fences a broker that is merely slow.
        A session that breaks without the controller's clean end means the controller
        died: should we become the next one, that is how we know to fence it quickly."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                controller = self.controller_id
                url = None if controller is None else self.broker_url(controller)
                if controller is None or controller == self.broker_id or url is None:
                    await asyncio.sleep(SESSION_RETRY_S)
                    continue
                if not await self._hold_session_with(session, controller, url):
                    self._controller_lost = (controller, int(time.monotonic() * 1000))
                await asyncio.sleep(SESSION_RETRY_S)

    async def _hold_session_with(
        self, session: aiohttp.ClientSession, controller: int, url: str
    ) -> bool:
        """Holds one session; False when it was established and then broke without the
        controller's clean end (the controller process died, or its host)."""
        path = SESSION_PATH.format(broker_id=self.broker_id)
        established = False
        try:
            async with session.post(
                url + path, json={"incarnation_id": self.incarnation_id}
            ) as resp:
                if resp.status != 200:
                    return True
                established = True
                tail = b""
                while True:
                    try:
                        chunk = await asyncio.wait_for(resp.content.read(64), SESSION_RETRY_S)
                    except TimeoutError:
                        if self.controller_id not in (controller, None):
                            return True  # it hangs (paused?) and another took over: move on
                        # No known controller is no reason to drop the session: a voter
                        # that was paused forgets the leader for a moment when it resumes.
                        continue
                    if not chunk:
                        return tail.endswith(SESSION_CLEAN_END)
                    tail = (tail + chunk)[-len(SESSION_CLEAN_END) :]
        except (aiohttp.ClientError, OSError):
            # A refused connection says nothing new; a broken one means it died.
            return not established

    async def hold_session(self, broker_id: int, is_open: Callable[[], bool]) -> bool:
        """The controller's side of a broker's session: counts it open until the broker's
        connection closes or this broker stops being the controller; True in the latter
        case (the caller then sends the clean end)."""
        self._liveness.session_opened(broker_id, int(time.monotonic() * 1000))
        try:
            while is_open() and self.is_controller:
                await asyncio.sleep(SESSION_RETRY_S)
            return is_open()
        finally:
            self._liveness.session_closed(broker_id, int(time.monotonic() * 1000))

    async def _controller_loop(self) -> None:
        while True:
            await asyncio.sleep(CONTROLLER_TICK_S)
            try:
                await self._controller_tick()
            except RaftkaError as exc:
                log.warning("controller: %s", exc.message)

    async def _controller_tick(self) -> None:
        quorum = self.quorum
        if quorum is None or not quorum.is_leader:
            self._was_controller = False
            return
        now_ms = int(time.monotonic() * 1000)
        state = quorum.state
        if not self._was_controller:
            # A new controller has heard from nobody yet: everyone gets a full session,
            # but a previous controller we saw die is as good as a closed session.
            self._liveness.reset(now_ms, list(state.brokers))
            if self._controller_lost is not None:
                lost, at_ms = self._controller_lost
                if (
                    lost != self.broker_id
                    and now_ms - at_ms < self.settings.broker_session_timeout_ms
                ):
                    self._liveness.session_closed(lost, at_ms)
                self._controller_lost = None
            self._was_controller = True
            log.info("broker %d is now the controller", self.broker_id)
        for fence in fence_commands(self._liveness, state, now_ms, _new_command_id):
            log.warning("controller: fencing broker %d", fence.broker_id)
            await self.submit(fence)
        # A big fence moves partitions off its broker a chunk per entry: the next chunk as
        # soon as the last one committed, so heartbeats never wait behind a whole fence.
        while self.is_controller and (chunks := fence_continuations(quorum.state, _new_command_id)):
            for chunk in chunks:
                await self.submit(chunk)
        for election in self._preferred_leaders.elections(quorum.state, _new_command_id):
            await self.submit(election)

    async def _retention_loop(self) -> None:
        interval_s = self.settings.log_retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            deleted = await self.replicas.apply_retention(int(time.time() * 1000))
            if deleted:
                log.info("retention deleted %d segments", deleted)

    async def _checkpoint_loop(self) -> None:
        interval_s = self.replicas.settings.high_watermark_checkpoint_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.replicas.checkpoint()
            except OSError:
                log.exception("writing the replication checkpoints failed")

    async def _disk_loop(self) -> None:
        """Makes the reserve file again once the disk has room for it (it was released
        when a metadata or checkpoint write found the disk full)."""
        while True:
            await asyncio.sleep(DISK_CHECK_INTERVAL_S)
            if not self.disk.held_bytes:
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self.disk.hold_reserve)
                except OSError:
                    log.exception("making the disk reserve file failed")

    async def _isr_loop(self) -> None:
        # Kafka checks every replica_lag_time_max_ms / 2; a tighter check costs little and
        # bounds how long acks=all waits on a dead follower.
        interval_s = self.settings.replica_lag_time_max_ms / 4000
        while True:
            await asyncio.sleep(interval_s)
            self.replicas.check_isrs()

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
                command_id=_new_command_id(),
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

    # -- topics ----------------------------------------------------------------

    async def create_topic(self, command: CreateTopic) -> TopicRecord:
        applied = await self.submit(command)
        topic = applied.state.topics.get(command.name)
        if topic is None:  # deleted again before this answer
            raise UnknownTopic(f"topic {command.name!r} was deleted meanwhile")
        return topic

    async def allocate_producer_id(self) -> int:
        """Hands out ids from a block reserved through the metadata log (as Kafka's
        AllocateProducerIds), so most allocations cost no Raft write."""
        if not self._producer_ids:
            applied = await self.submit(
                AllocateProducerIds(
                    command_id=uuid.uuid4().hex,
                    broker_id=self.broker_id,
                    count=PRODUCER_ID_BLOCK_SIZE,
                )
            )
            block = next(e for e in applied.events if isinstance(e, ProducerIdsAllocated))
            self._producer_ids.extend(range(block.first_id, block.first_id + block.count))
        return self._producer_ids.popleft()

    async def delete_topic(self, name: str) -> None:
        await self.submit(DeleteTopic(command_id=uuid.uuid4().hex, name=name))


def _new_command_id() -> str:
    return uuid.uuid4().hex
