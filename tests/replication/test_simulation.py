"""A deterministic simulation of one partition's replication (STYLE.md section 7).

Three brokers each run the real `PartitionReplica` on a `MemoryLog`; the controller is the
real pure state machine (`metadata.state.apply`). Hypothesis is both the scheduler and the
nemesis: it picks which message in flight is delivered or dropped, when time advances,
when logs are fsynced, and when brokers crash (losing what was not fsynced), restart,
are cut off from the network, fenced, unfenced or made leader. Nothing uses a thread or a
real sleep: one event loop owned by the machine runs every rule to completion, so a failing
run replays exactly from the rules hypothesis prints.

The brokers do what the broker's code does, step by step:
- metadata reaches a broker only as delayed, reorderable messages; it takes the partition's
  role with `replica.become(role_of(...))`, which refuses stale ones (rule 10), and its
  fetcher follows the role's leader as `ReplicaManager._update_fetchers` does;
- a follower fetches as `fetcher.py` does: one request at a time from `fetch_position()`,
  answered by the leader's `answer_follower` (as `ReplicaManager.answer_fetch`), planned by
  `plan_after_fetch` and applied only while its log end offset is still the one it sent;
- ISR changes go to the controller as AlterPartition messages; their results come back as
  in `ReplicaManager._send_isr_change` (a lost request or answer leaves the outcome unknown,
  as a call to the controller that timed out does: the change stays pending and goes
  again);
- producers append with acks=all to a broker acting as leader, wait for an fsync covering
  the batch, and are acknowledged when `wait_for_commit` returns (given the append's
  `leader_epoch`, which the produce route must pass too: without it, a leader deposed and
  re-elected during that fsync acknowledged a write its follower truncation had removed);
  an idempotent producer retries its batch until acknowledged;
- a restarted broker rebuilds its replica from the log, its last high-watermark checkpoint
  and producer snapshot (as `ReplicaManager.checkpoint` and `_open` do), and registers
  with a new incarnation, which fences the old one.

Scope, stated because the invariants depend on it:
- fsync = "always": a leader acknowledges once an fsync covered the batch, and a follower
  fsyncs what it appended before its next fetch reports it (`fetcher.py`). Under "batch"
  or "never", a power cut of the ISR members that hold an acknowledged record loses it by
  design (docs/guarantees.md), so "no acks=all record lost" cannot hold there.
- unclean leader election is off (the default): a leader from outside the ISR may lack
  acknowledged records, so the invariants would not hold either.
- a power cut spares what a leader alone in its ISR counted as committed before fsyncing
  it. Its high watermark is then its own log end offset, synced or not ("visibility comes
  before durability", docs/guarantees.md): consumers may read records that the power cut
  then erases, and the offsets are reused for other records, so "offsets are never reused"
  cannot hold there. Everything else a power cut may take (a leader's uncommitted tail,
  anything unsynced on a follower, whose position counts only once fsynced) it takes.
- one partition, replication factor 3, no retention, no reassignment.

Checked after every step: acknowledged records are on the leader at their offsets (whenever
the broker the metadata names leader acts as one); below its high watermark every replica
holds the one record ever committed at each offset; a leader's high watermark never
decreases within its epoch; ISR members hold byte-identical batches below their smallest
high watermark; one leader per epoch; no idempotent batch written twice; the metadata
invariants. At the end the cluster is healed and settles, every acknowledged record reads
back from the leader, all logs are identical, and the idempotent producer's last batch is
answered exactly once. `HYPOTHESIS_PROFILE=deep` hunts longer; a failure prints the rules
to replay, and SCENARIOS (at the end) keeps the runs that found bugs.
"""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from bisect import bisect_right
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import Phase, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftka.metadata.commands import (
    AlterPartition,
    Command,
    CreateTopic,
    ElectLeader,
    FenceBroker,
    RegisterBroker,
    UnfenceBroker,
)
from raftka.metadata.errors import (
    InvalidProducerEpoch,
    LeaderNotAvailable,
    NotEnoughReplicas,
    OutOfOrderSequence,
)
from raftka.metadata.events import PartitionChanged
from raftka.metadata.model import MetadataState, PartitionRecord, TopicConfig
from raftka.metadata.state import Applied, Rejected, apply
from raftka.replication.follower import Append, Backoff, FetchAnswer, plan_after_fetch
from raftka.replication.manager import STALE_LEADER_CODES, role_of
from raftka.replication.partition import (
    Appended,
    PartitionReplica,
    PartitionRole,
    epoch_before,
    rebuild_producer_states,
)
from raftka.replication.producer_state import ProducerRef, ProducerStates
from raftka.storage.batch import build_fragments, record_fragments
from raftka.storage.errors import StorageError
from tests.replication.memory_log import MemoryLog

INVARIANT_MARKER = "hypothesis_stateful_invariant"  # what @invariant sets on a method
TOPIC = "sim"
TOPIC_ID = "sim-topic-id"
BROKER_IDS = (1, 2, 3)
LAG_MS = 10_000  # replica_lag_time_max_ms
ISR_CHECK_MS = LAG_MS // 4  # how often leaders check their ISR
# acks=all waits end by the simulation's events (a high watermark, a role change, a crash),
# never by this timer: the loop never runs for real time.
COMMIT_WAIT_S = 1e6
FETCH_MAX_BYTES = (1, 1 << 20)  # one batch per answer (the first always goes), or all
TIME_STEPS_MS = (100, ISR_CHECK_MS, LAG_MS + 1)
MAX_DRAIN_PASSES = 100  # loop passes after a rule; wake-ups chain only a few callbacks deep
# What each delivery sends is delivered too, this many times over (fetch, answer, an ISR
# change, its result, the metadata it changed: four deep).
DELIVERY_PASSES = 5
SETTLE_ROUNDS = 40  # rounds of "fsync, fetch, deliver, tick" the healed cluster gets at most
STALLED_ROUNDS = 4  # ... and this many in a row without any change mean it is stuck
IDEMPOTENT_PRODUCER = 7_000
# How a broker stops: how many of its unsynced batches survive (None: all of them).
STOPS: dict[str, int | None] = {
    "clean-shutdown": None,
    "process-killed": None,
    "power-cut": 0,
    "torn-tail": 1,
}
BROKER_FAULTS = (*(f"stop-{how}" for how in STOPS), "isolate")
BROKER_REPAIRS = ("restart", "heal")
CONTROLLER_ACTIONS = ("fence", "unfence", "elect-leader")
# Steps per run and runs per case, by profile. The ci profile replays the same runs every
# time (derandomized): about 13 s per case on a 2-core machine. dev explores new runs each
# time; deep is for long local hunts.
STEPS_BY_PROFILE = {"ci": 80, "dev": 100, "deep": 200}
EXAMPLES_BY_PROFILE = {"ci": 200}  # else the profile's max_examples
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")  # as tests/conftest.py loads it

brokers_st = st.sampled_from(BROKER_IDS)


def run_inline(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """The replicas' runner for blocking disk work: at once, with a completed future."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


class SimClock:
    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def __call__(self) -> int:
        return self.now_ms


# ---- messages in flight ---------------------------------------------------------------------

CONTROLLER = 0  # the controller's end of a message; it is never cut off or crashed


@dataclass(frozen=True)
class FetchRequest:
    follower: int
    leader: int
    session: int  # the follower's fetcher for this leader (a new one per leader change)
    leader_epoch: int
    fetch_offset: int
    last_fetched_epoch: int
    max_bytes: int

    @property
    def ends(self) -> tuple[int, int]:
        return self.follower, self.leader


@dataclass(frozen=True)
class FetchResponse:
    request: FetchRequest
    answer: FetchAnswer

    @property
    def ends(self) -> tuple[int, int]:
        return self.request.leader, self.request.follower


@dataclass(frozen=True)
class MetadataUpdate:
    broker: int
    incarnation: int
    role: PartitionRole

    @property
    def ends(self) -> tuple[int, int]:
        return CONTROLLER, self.broker


@dataclass(frozen=True)
class AlterPartitionRequest:
    incarnation: int
    replica: PartitionReplica = field(compare=False, repr=False)
    role: PartitionRole  # the role the proposal was made in
    command: AlterPartition

    @property
    def ends(self) -> tuple[int, int]:
        return self.command.leader, CONTROLLER


@dataclass(frozen=True)
class AlterPartitionResult:
    request: AlterPartitionRequest
    result: Applied | Rejected = field(repr=False)

    @property
    def ends(self) -> tuple[int, int]:
        return CONTROLLER, self.request.command.leader


Message = (
    FetchRequest | FetchResponse | MetadataUpdate | AlterPartitionRequest | AlterPartitionResult
)


# ---- producers' writes and brokers ------------------------------------------------------------


@dataclass
class Write:
    """One batch a producer sends with acks=all (an idempotent one retries it)."""

    write_id: int
    records: list[tuple[int, bytes]]
    producer: ProducerRef | None
    acked: Appended | None = None

    def fragments_at(self, base_offset: int) -> list[bytes]:
        """The records as the log stores them when the batch starts at base_offset."""
        return build_fragments(base_offset, self.records)


@dataclass
class SimBroker:
    broker_id: int
    log: MemoryLog
    replica: PartitionReplica
    incarnation: int = 1
    alive: bool = True
    isolated: bool = False
    # What survives a crash besides the log: ReplicaManager.checkpoint's two files.
    hw_checkpoint: int = 0
    producer_snapshot: bytes | None = None
    snapshotted_at: int | None = None  # in memory only, as ReplicaManager._snapshotted_at
    # The fetcher: which leader it fetches from, and its one request at a time.
    fetch_leader: int | None = None
    fetch_session: int = 0
    fetch_in_flight: bool = False
    fetch_waits_for_fsync: bool = False
    fsync_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # The high watermark it reached leading alone in its ISR since its last fsync: below
    # it, its own unsynced records counted as committed (the scope's power-cut exception).
    committed_alone_below: int = 0


_fragment_cache: dict[bytes, list[bytes]] = {}


def fragments_of(batch: bytes) -> list[bytes]:
    found = _fragment_cache.get(batch)
    if found is None:
        found = _fragment_cache[batch] = record_fragments(batch)
    return found


def record_at(log: MemoryLog, offset: int) -> bytes | None:
    batches = log.stored_batches()
    k = bisect_right([h.base_offset for h, _ in batches], offset) - 1
    if k < 0 or offset > batches[k][0].last_offset:
        return None
    header, batch = batches[k]
    return fragments_of(batch)[offset - header.base_offset]


class ReplicationSimulation(RuleBasedStateMachine):
    """One partition on brokers 1-3, RF 3; subclasses set min_insync_replicas."""

    MIN_INSYNC_REPLICAS = 2

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = SimClock()
        self.state = MetadataState.empty()
        self.brokers: dict[int, SimBroker] = {}
        self.network: list[Message] = []
        # The history the checks judge.
        self.writes: list[Write] = []
        self.attempts: list[tuple[Write, asyncio.Task[Appended]]] = []
        self.committed: dict[int, bytes] = {}  # offset -> the record committed there
        self.leader_of_epoch: dict[int, int] = {}
        self.leader_hw: dict[tuple[int, int, int], int] = {}
        self.idempotent_write: Write | None = None
        self.next_sequence = 0
        self.seen: set[str] = set()  # what this run exercised (hypothesis statistics)
        for b in BROKER_IDS:
            self._apply(RegisterBroker(b, f"http://b{b}", f"b{b}-1", raft_voter=True))
        config = TopicConfig(min_insync_replicas=self.MIN_INSYNC_REPLICAS, retention_ms=None)
        self._apply(CreateTopic(TOPIC, TOPIC_ID, config, (BROKER_IDS,)))
        for b in BROKER_IDS:
            log = MemoryLog(f"b{b}")
            self.brokers[b] = SimBroker(b, log, self._new_replica(b, log, 0, ProducerStates()))
        # The cluster starts settled: every broker knows the first roles.
        self._run_now(self._everyone_knows_the_roles)

    def _everyone_knows_the_roles(self) -> None:
        for b in self.brokers.values():
            self._become(b, self._role())

    # ---- plumbing -----------------------------------------------------------------------------

    def _new_replica(
        self, broker_id: int, log: MemoryLog, high_watermark: int, producers: ProducerStates
    ) -> PartitionReplica:
        return PartitionReplica(
            TOPIC,
            0,
            TOPIC_ID,
            log,  # duck-typed: the part of PartitionLog that replication uses
            broker_id=broker_id,
            high_watermark=high_watermark,
            producers=producers,
            replica_lag_time_max_ms=LAG_MS,
            clock=self.clock,
            propose_isr=self._propose_isr,
            run_blocking=run_inline,
        )

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Runs one rule's work on the machine's loop, then lets every woken task run."""
        result = self.loop.run_until_complete(self._then_drain(coro))
        self._collect_outcomes()
        for b in self._alive():
            leader = b.replica.leader_state
            if b.replica.is_leader and leader and leader.maximal_isr == (b.broker_id,):
                b.committed_alone_below = max(b.committed_alone_below, b.replica.high_watermark)
        return result

    def _run_now(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return fn()

        return self._run(call())

    async def _then_drain(self, coro: Coroutine[Any, Any, Any]) -> Any:
        result = await coro
        await self._drain()
        return result

    async def _drain(self) -> None:
        """Yields until no callback is ready: every task woken by the step has run as far
        as it can. (`_ready` is the loop's queue of callbacks due on its next pass.)"""
        for _ in range(MAX_DRAIN_PASSES):
            await asyncio.sleep(0)
            if not self.loop._ready:  # type: ignore[attr-defined]
                return
        raise AssertionError(f"the loop is still busy after {MAX_DRAIN_PASSES} passes")

    def _role(self) -> PartitionRole:
        return role_of(self.state.topics[TOPIC], 0)

    @property
    def partition(self) -> PartitionRecord:
        return self.state.topics[TOPIC].partitions[0]

    def _alive(self) -> list[SimBroker]:
        return [b for b in self.brokers.values() if b.alive]

    # ---- the controller -------------------------------------------------------------------------

    def _apply(self, command: Command) -> Applied | Rejected:
        result = apply(self.state, command)
        if isinstance(result, Applied):
            self.state = result.state
            self.state.check_invariants()
            if any(isinstance(e, PartitionChanged) for e in result.events):
                for b in self.brokers.values():
                    self._send_role(b)
        return result

    def _send_role(self, b: SimBroker) -> None:
        if b.alive:
            self._send(MetadataUpdate(b.broker_id, b.incarnation, self._role()))

    def _propose_isr(self, replica: PartitionReplica, isr: tuple[int, ...]) -> None:
        """ReplicaManager.propose_isr: the change goes out with the role it was based on."""
        b, role = self.brokers[replica.broker_id], replica.role
        command = AlterPartition(
            TOPIC, 0, replica.broker_id, role.leader_epoch, role.partition_epoch, isr
        )
        self._send(AlterPartitionRequest(b.incarnation, replica, role, command))

    # ---- the network ----------------------------------------------------------------------------

    def _cut_off(self, broker_id: int) -> bool:
        return broker_id != CONTROLLER and self.brokers[broker_id].isolated

    def _send(self, message: Message) -> None:
        src, dst = message.ends
        if self._cut_off(src) or self._cut_off(dst):
            self._lost(message)
        else:
            self.network.append(message)

    def _current(self, broker_id: int, incarnation: int) -> SimBroker | None:
        b = self.brokers[broker_id]
        return b if b.alive and b.incarnation == incarnation else None

    def _lost(self, message: Message) -> None:
        """A message that never arrives: its sender's timeout fires."""
        if isinstance(message, FetchRequest | FetchResponse):
            fetch = message if isinstance(message, FetchRequest) else message.request
            b = self.brokers[fetch.follower]
            if b.fetch_session == fetch.session:
                b.fetch_in_flight = False
        elif isinstance(message, AlterPartitionRequest | AlterPartitionResult):
            alter = message if isinstance(message, AlterPartitionRequest) else message.request
            if self._current(alter.command.leader, alter.incarnation) is not None:
                # No answer: the controller may have committed it all the same.
                alter.replica.isr_change_failed(based_on=alter.role, outcome_unknown=True)

    async def _deliver(self, message: Message) -> None:
        if isinstance(message, FetchRequest):
            leader = self.brokers[message.leader]
            if not leader.alive:
                self._lost(message)
                return
            answer = leader.replica.answer_follower(
                message.follower,
                message.leader_epoch,
                message.fetch_offset,
                message.last_fetched_epoch,
                message.max_bytes,
            )
            self._send(FetchResponse(message, answer))
        elif isinstance(message, FetchResponse):
            b = self.brokers[message.request.follower]
            if b.alive and b.fetch_session == message.request.session:
                b.fetch_in_flight = False
                await self._follower_applies(b, message)
        elif isinstance(message, MetadataUpdate):
            b_or_none = self._current(message.broker, message.incarnation)
            if b_or_none is not None:
                self._become(b_or_none, message.role)
        elif isinstance(message, AlterPartitionRequest):
            self._send(AlterPartitionResult(message, self._apply(message.command)))
        else:
            self._isr_change_answered(message)

    async def _follower_applies(self, b: SimBroker, response: FetchResponse) -> None:
        """ReplicaFetcher._handle for one partition."""
        replica, sent = b.replica, response.request.fetch_offset
        if not replica.is_follower or replica.role.leader != response.request.leader:
            return
        if replica.log_end_offset != sent:
            return  # the log changed since the request: the answer is for another offset
        step = plan_after_fetch(replica.log, sent, response.answer)
        if isinstance(step, Backoff):
            return
        try:
            moved = await replica.apply_follower_step(step)
        except StorageError:
            return  # the fetcher logs it and backs off
        if not isinstance(step, Append):
            self.seen.add("a follower truncated its log")
        if moved and replica.log_end_offset != sent and b.log.unsynced_batches:
            b.fetch_waits_for_fsync = True  # fsync="always": durable before the next fetch

    def _isr_change_answered(self, message: AlterPartitionResult) -> None:
        """ReplicaManager._send_isr_change, once the controller answered."""
        request = message.request
        b = self._current(request.command.leader, request.incarnation)
        if b is None:
            return
        replica, result, role = request.replica, message.result, request.role
        if isinstance(result, Rejected):
            self.seen.add("the controller refused an ISR change")
            if result.code in STALE_LEADER_CODES:
                replica.fence_leadership(f"ISR change refused: {result.message}", based_on=role)
            else:
                replica.isr_change_failed(based_on=role)
            return
        topic = result.state.topics.get(TOPIC)
        if topic is not None and topic.topic_id == replica.topic_id:
            self._become(b, role_of(topic, 0))
        else:
            replica.isr_change_failed(based_on=role)

    def _become(self, b: SimBroker, role: PartitionRole) -> None:
        """replica.become, then ReplicaManager._update_fetchers: a follower fetches from its
        role's leader; a new leader means a new fetcher (the old one's request is dropped)."""
        b.replica.become(role)
        leader = b.replica.role.leader
        fetch_leader = leader if leader is not None and leader != b.broker_id else None
        if fetch_leader != b.fetch_leader:
            b.fetch_leader = fetch_leader
            b.fetch_session += 1
            b.fetch_in_flight = False
            b.fetch_waits_for_fsync = False

    # ---- producers --------------------------------------------------------------------------------

    def _new_write(self, count: int, producer: ProducerRef | None) -> Write:
        write_id = len(self.writes)
        now = self.clock()
        records = [(now + k, b'"value":"w%d-%d"' % (write_id, k)) for k in range(count)]
        write = Write(write_id, records, producer)
        self.writes.append(write)
        return write

    def _send_write(self, b: SimBroker, write: Write) -> None:
        """The produce route: append, an fsync covering it, then wait for the commit."""
        replica = b.replica

        async def attempt() -> Appended:
            try:
                appended = await replica.append(write.records, acks="all", producer=write.producer)
            except (OutOfOrderSequence, InvalidProducerEpoch) as exc:
                # A deposed leader that does not know it yet may lack the batches acknowledged
                # since; the current leader must know every one of them.
                p = self.partition
                if p.leader == b.broker_id and replica.role.leader_epoch == p.leader_epoch:
                    raise AssertionError(
                        f"leader {b.broker_id} refused write {write.write_id} of "
                        f"{write.producer}: {exc}: it lost track of this producer's batches"
                    ) from exc
                raise LeaderNotAvailable(f"a deposed leader refused it: {exc}") from exc
            if b.log.unsynced_batches:
                waiter = self.loop.create_future()
                b.fsync_waiters.append(waiter)
                await waiter
            await replica.wait_for_commit(appended, COMMIT_WAIT_S)
            return appended

        self.attempts.append((write, self.loop.create_task(attempt())))

    def _collect_outcomes(self) -> None:
        pending = []
        for write, task in self.attempts:
            if not task.done():
                pending.append((write, task))
                continue
            error = task.exception()
            if error is None:
                self._acknowledged(write, task.result())
            elif not isinstance(error, LeaderNotAvailable | NotEnoughReplicas | ConnectionError):
                raise error
        self.attempts = pending

    def _acknowledged(self, write: Write, appended: Appended) -> None:
        if write.acked is not None:
            assert (appended.base_offset, appended.last_offset) == (
                write.acked.base_offset,
                write.acked.last_offset,
            ), f"write {write.write_id} was acknowledged at {write.acked} and again at {appended}"
            return
        write.acked = appended
        self.seen.add("a write was acknowledged")
        if appended.duplicate:
            self.seen.add("a retry was answered as a duplicate")
        if write is self.idempotent_write:
            self.idempotent_write = None
            self.next_sequence += len(write.records)

    # ---- rules: producers ------------------------------------------------------------------------

    def _acting_leaders(self) -> list[SimBroker]:
        return [b for b in self._alive() if b.replica.is_leader]

    def _acting_leader(self, pick: int) -> SimBroker:
        """Where a producer's metadata points: one of the brokers acting as leader (a deposed
        one that does not know it yet included)."""
        leaders = self._acting_leaders()
        return leaders[pick % len(leaders)]

    @precondition(lambda self: self._acting_leaders())
    @rule(count=st.integers(1, 3), pick=st.integers(0, 1))
    def produce_acks_all(self, count: int, pick: int) -> None:
        """A plain producer writes a new batch (what fails is not retried)."""
        b = self._acting_leader(pick)
        self._run_now(lambda: self._send_write(b, self._new_write(count, None)))

    @precondition(lambda self: self._acting_leaders())
    @rule(count=st.integers(1, 3), pick=st.integers(0, 1))
    def produce_idempotent(self, count: int, pick: int) -> None:
        """The idempotent producer sends its unacknowledged batch again, or a new one."""
        self._send_idempotent(self._acting_leader(pick), count)

    @precondition(lambda self: self._acting_leaders())
    @rule(count=st.integers(1, 3), pick=st.integers(0, 1), idempotent=st.booleans())
    def produce_then_replicate(self, count: int, pick: int, idempotent: bool) -> None:
        """A write in a healthy moment: produced, then two replication rounds (the second
        reports the followers' positions), which usually acknowledge it."""
        b = self._acting_leader(pick)
        if idempotent:
            self._send_idempotent(b, count)
        else:
            self._run_now(lambda: self._send_write(b, self._new_write(count, None)))
        self.replicate_round()
        self.replicate_round()

    def _send_idempotent(self, b: SimBroker, count: int) -> None:
        if self.idempotent_write is None:
            ref = ProducerRef(IDEMPOTENT_PRODUCER, 0, self.next_sequence)
            self.idempotent_write = self._new_write(count, ref)
        write = self.idempotent_write
        self._run_now(lambda: self._send_write(b, write))

    # ---- rules: the network ----------------------------------------------------------------------

    @precondition(lambda self: self.network)
    @rule(pick=st.integers(0, 1_000))
    def deliver_message(self, pick: int) -> None:
        self._run(self._deliver(self.network.pop(pick % len(self.network))))

    @precondition(lambda self: self.network)
    @rule(pick=st.integers(0, 1_000))
    def drop_message(self, pick: int) -> None:
        message = self.network.pop(pick % len(self.network))
        self._run_now(lambda: self._lost(message))

    @precondition(lambda self: self.network)
    @rule()
    def deliver_everything_in_flight(self) -> None:
        """Delivers what is in flight now, oldest first (not what that sends)."""
        batch, self.network = self.network, []
        for message in batch:
            self._run(self._deliver(message))

    def isolate_broker(self, broker: int) -> None:
        """Every message to or from `broker` is lost until it is healed."""
        b = self.brokers[broker]
        if not b.alive or b.isolated:
            return
        b.isolated = True
        lost = [m for m in self.network if broker in m.ends]
        self.network = [m for m in self.network if broker not in m.ends]

        def lose() -> None:
            for message in lost:
                self._lost(message)

        self._run_now(lose)

    def heal_broker(self, broker: int) -> None:
        b = self.brokers[broker]
        if b.isolated:
            b.isolated = False
            self._send_role(b)  # it catches up with the metadata log

    @rule(fsync=st.booleans())
    def replicate_round(self, fsync: bool = True) -> None:
        """The cluster working normally for a moment: flusher rounds (unless `fsync` is
        False: then a follower that appended since its last fsync does not fetch, and
        acknowledgements wait), every follower fetches, and what is in flight (and what
        that sends) is delivered."""
        if fsync:
            self._run_now(self._fsync_all)
        for b in self._alive():
            self.follower_fetches(b.broker_id, FETCH_MAX_BYTES[-1])
        for _ in range(DELIVERY_PASSES):
            if not self.network:
                break
            self.deliver_everything_in_flight()

    # ---- rules: followers, disks and time ----------------------------------------------------------

    def _can_fetch(self, b: SimBroker) -> bool:
        replica = b.replica
        return (
            b.alive
            and replica.is_follower
            and b.fetch_leader == replica.role.leader
            and not (b.fetch_in_flight or b.fetch_waits_for_fsync)
        )

    @precondition(lambda self: any(self._can_fetch(b) for b in self.brokers.values()))
    @rule(broker=brokers_st, max_bytes=st.sampled_from(FETCH_MAX_BYTES))
    def follower_fetches(self, broker: int, max_bytes: int) -> None:
        b = self.brokers[broker]
        replica = b.replica
        if not self._can_fetch(b):
            return
        assert b.fetch_leader is not None
        offset, last_epoch = replica.fetch_position()
        b.fetch_in_flight = True
        self._send(
            FetchRequest(
                broker,
                b.fetch_leader,
                b.fetch_session,
                replica.role.leader_epoch,
                offset,
                last_epoch,
                max_bytes,
            )
        )

    @precondition(
        lambda self: any(b.alive and b.log.unsynced_batches for b in self.brokers.values())
    )
    @rule(broker=brokers_st)
    def fsync_log(self, broker: int) -> None:
        """The flusher's round: everything appended so far is durable."""
        b = self.brokers[broker]
        if b.alive:
            self._run_now(lambda: self._fsync(b))

    def _fsync_all(self) -> None:
        for b in self._alive():
            self._fsync(b)

    def _fsync(self, b: SimBroker) -> None:
        b.log.sync()
        b.committed_alone_below = 0
        b.fetch_waits_for_fsync = False
        waiters, b.fsync_waiters = b.fsync_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @rule(broker=brokers_st)
    def checkpoint_broker(self, broker: int) -> None:
        """ReplicaManager.checkpoint: the high watermark, and producer state if it moved."""
        b = self.brokers[broker]
        if not b.alive:
            return
        b.hw_checkpoint = b.replica.high_watermark
        leo = b.replica.log_end_offset
        if len(b.replica.producers) and b.snapshotted_at != leo:
            doc = b.replica.producers.to_snapshot(leo, epoch_before(b.log, leo))
            b.producer_snapshot = orjson.dumps(doc)
            b.snapshotted_at = leo

    @rule(ms=st.sampled_from(TIME_STEPS_MS))
    def advance_clock(self, ms: int) -> None:
        """Time passes; leaders run their ISR check (ReplicaManager.check_isrs)."""
        self.clock.now_ms += ms
        self._run_now(self._leaders_check_their_isr)

    def _leaders_check_their_isr(self) -> None:
        for b in self._alive():
            b.replica.maybe_change_isr()

    # ---- rules: the nemesis (what breaks and what repairs) ----------------------------------------

    # A few rules, each naming what it does in an argument: hypothesis picks rules uniformly,
    # and ten fault rules would leave the cluster too rarely healthy to acknowledge a write.
    @rule(fault=st.sampled_from(BROKER_FAULTS), broker=brokers_st)
    def break_broker(self, fault: str, broker: int) -> None:
        """Stops `broker` (cleanly, killed, by a power cut, or with a torn tail) or cuts it
        off the network. Does nothing where it cannot apply."""
        if fault == "isolate":
            self.isolate_broker(broker)
        else:
            self.stop_broker(broker, fault.removeprefix("stop-"))

    @precondition(lambda self: any(not b.alive or b.isolated for b in self.brokers.values()))
    @rule(repair=st.sampled_from(BROKER_REPAIRS), broker=brokers_st)
    def repair_broker(self, repair: str, broker: int) -> None:
        """Restarts a stopped `broker` or heals its network. Does nothing where it cannot
        apply."""
        if repair == "restart":
            self.restart_broker(broker)
        else:
            self.heal_broker(broker)

    @rule(action=st.sampled_from(CONTROLLER_ACTIONS), broker=brokers_st)
    def controller_acts(self, action: str, broker: int) -> None:
        """The controller fences `broker` (its session timed out: killed, paused or cut
        off), unfences it (it heartbeats again), or elects it leader (preferred-leader
        election). Elections otherwise follow the state machine's rules. Does nothing where
        it cannot apply."""
        if action == "fence":
            self.controller_fences_broker(broker)
        elif action == "unfence":
            self.controller_unfences_broker(broker)
        else:
            self.controller_elects_leader(broker)

    # ---- what the nemesis does -------------------------------------------------------------------

    def stop_broker(self, broker: int, how: str) -> None:
        """A clean shutdown checkpoints and syncs (ReplicaManager.close); a killed process
        keeps its page cache; a power cut loses every unsynced batch, a torn tail all but
        the first of them."""
        b = self.brokers[broker]
        if not b.alive:
            return
        if how == "clean-shutdown":
            self.checkpoint_broker(broker)
            b.log.sync()

        def crash() -> None:
            b.alive = False
            b.replica.close()
            for waiter in b.fsync_waiters:
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"broker {broker} stopped"))
            b.fsync_waiters = []
            keep = STOPS[how]
            unsynced = b.log.stored_batches()[b.log.synced_batches :]
            if keep is not None:  # the scope's exception: see the module docstring
                spared = sum(1 for h, _ in unsynced if h.base_offset < b.committed_alone_below)
                keep = max(keep, spared)
                if len(unsynced) > keep:
                    self.seen.add("a power cut lost unsynced batches")
            b.log = b.log.crash(keep)
            b.committed_alone_below = 0
            # Its connections die: nothing in flight reaches it any more, and whoever waits
            # for an answer from it times out.
            lost = [m for m in self.network if m.ends[1] == broker]
            self.network = [m for m in self.network if m.ends[1] != broker]
            for message in lost:
                self._lost(message)

        self._run_now(crash)

    def restart_broker(self, broker: int) -> None:
        """Recovery as ReplicaManager._open does it, then a registration with a new
        incarnation (which fences the old one in the metadata)."""
        b = self.brokers[broker]
        if b.alive or b.isolated:
            return

        def restart() -> None:
            snapshot = None
            if b.producer_snapshot is not None:
                snapshot = ProducerStates.from_snapshot(orjson.loads(b.producer_snapshot))
            producers = rebuild_producer_states(b.log, snapshot)
            b.replica = self._new_replica(broker, b.log, b.hw_checkpoint, producers)
            b.incarnation += 1
            b.alive = True
            b.snapshotted_at = None
            b.fetch_leader, b.fetch_in_flight, b.fetch_waits_for_fsync = None, False, False
            b.fetch_session += 1
            self._apply(
                RegisterBroker(
                    broker, f"http://b{broker}", f"b{broker}-{b.incarnation}", raft_voter=True
                )
            )
            self._send_role(b)  # its first reconcile reads the metadata it loaded

        self._run_now(restart)

    def controller_fences_broker(self, broker: int) -> None:
        """Its session timed out (killed, paused or cut off): elections follow the rules."""
        if not self.state.brokers[broker].fenced:
            self._run_now(lambda: self._apply(FenceBroker(broker)))

    def controller_unfences_broker(self, broker: int) -> None:
        """It heartbeats again (only possible alive and reachable)."""
        b = self.brokers[broker]
        if b.alive and not b.isolated and self.state.brokers[broker].fenced:
            self._run_now(lambda: self._apply(UnfenceBroker(broker)))

    def controller_elects_leader(self, broker: int) -> None:
        """A preferred-leader election (refused unless `broker` is an unfenced ISR member)."""
        if self.partition.leader != broker:
            command = ElectLeader(TOPIC, 0, broker, self.partition.leader_epoch)
            self._run_now(lambda: self._apply(command))

    # ---- invariants ------------------------------------------------------------------------------

    @invariant()
    def metadata_invariants_hold(self) -> None:
        self.state.check_invariants()

    @invariant()
    def one_leader_per_epoch(self) -> None:
        for b in self._alive():
            if b.replica.is_leader:
                epoch = b.replica.role.leader_epoch
                owner = self.leader_of_epoch.setdefault(epoch, b.broker_id)
                assert owner == b.broker_id, (
                    f"brokers {owner} and {b.broker_id} both acted as leader in epoch {epoch}"
                )

    @invariant()
    def leader_high_watermark_never_decreases(self) -> None:
        for b in self._alive():
            if b.replica.is_leader:
                key = (b.broker_id, b.incarnation, b.replica.role.leader_epoch)
                hw = b.replica.high_watermark
                before = self.leader_hw.get(key, hw)
                assert hw >= before, f"leader {key} moved its high watermark from {before} to {hw}"
                self.leader_hw[key] = hw

    @invariant()
    def offsets_are_never_reused(self) -> None:
        """Below its high watermark every replica holds the one record committed there."""
        for b in self._alive():
            hw = b.replica.high_watermark
            for header, batch in b.log.stored_batches():
                if header.base_offset >= hw:
                    break
                fragments = fragments_of(batch)
                for k in range(min(header.record_count, hw - header.base_offset)):
                    offset = header.base_offset + k
                    first = self.committed.setdefault(offset, fragments[k])
                    assert first == fragments[k], (
                        f"broker {b.broker_id} holds {fragments[k]!r} at offset {offset} below "
                        f"its high watermark {hw}; {first!r} was committed there"
                    )

    @invariant()
    def isr_members_agree_below_their_high_watermarks(self) -> None:
        members = [self.brokers[r] for r in self.partition.isr if self.brokers[r].alive]
        if len(members) < 2:
            return
        hw = min(b.replica.high_watermark for b in members)

        def below(b: SimBroker) -> list[bytes]:
            return [batch for h, batch in b.log.stored_batches() if h.base_offset < hw]

        first = below(members[0])
        for b in members[1:]:
            assert below(b) == first, (
                f"ISR members {members[0].broker_id} and {b.broker_id} hold different batches "
                f"below high watermark {hw}"
            )

    @invariant()
    def acknowledged_records_are_on_the_leader(self) -> None:
        leader = self.partition.leader
        if leader is None:
            return
        b = self.brokers[leader]
        if b.alive and b.replica.is_leader:
            self._check_acknowledged_in(b)

    def _check_acknowledged_in(self, b: SimBroker) -> None:
        for write in self.writes:
            if write.acked is None:
                continue
            base = write.acked.base_offset
            for k, expected in enumerate(write.fragments_at(base)):
                found = record_at(b.log, base + k)
                assert found == expected, (
                    f"write {write.write_id} was acknowledged at offsets {base}-"
                    f"{write.acked.last_offset}; leader {b.broker_id} (epoch "
                    f"{b.replica.role.leader_epoch}) holds {found!r} at {base + k}"
                )

    @invariant()
    def no_idempotent_batch_is_written_twice(self) -> None:
        for b in self._alive():
            seen: dict[tuple[int, int, int], int] = {}
            for header, _batch in b.log.stored_batches():
                if header.producer_id < 0:
                    continue
                key = (header.producer_id, header.producer_epoch, header.base_sequence)
                assert key not in seen, (
                    f"broker {b.broker_id} holds producer batch {key} at offsets "
                    f"{seen[key]} and {header.base_offset}"
                )
                seen[key] = header.base_offset

    # ---- the end: heal everything, let replication settle, read every acknowledged record ----------

    def teardown(self) -> None:
        if currently_in_test_context():  # not in a replayed scenario (below)
            for what in sorted(self.seen):
                event(what)
            event(f"leader epochs reached: {min(self.partition.leader_epoch, 5)}")
        try:
            # Only after a run that passed: a failure already propagating stays the report.
            if sys.exc_info()[0] is None:
                self._heal_and_settle()
                self._check_settled_cluster()
        finally:
            for _write, task in self.attempts:
                task.cancel()
            self.loop.run_until_complete(self._drain())
            self.loop.close()

    def _heal_and_settle(self) -> None:
        for b in self.brokers.values():
            b.isolated = False
        for b in self.brokers.values():
            self.restart_broker(b.broker_id)
        for b in self.brokers.values():
            self.controller_unfences_broker(b.broker_id)
            self._send_role(b)
        retried = False
        stalled, before = 0, self._progress()
        for _ in range(SETTLE_ROUNDS):
            self._settle_round()
            if self._settled():
                if self.idempotent_write is None or retried:
                    return
                # Its last batch, sent again to the leader: answered once, written once.
                retried = True
                assert self.partition.leader is not None
                self._send_idempotent(self.brokers[self.partition.leader], 1)
            now = self._progress()
            stalled = stalled + 1 if now == before else 0
            before = now
            if stalled == STALLED_ROUNDS:
                break
        raise AssertionError(f"the healed cluster did not settle: {self._describe()}")

    def _settle_round(self) -> None:
        self.replicate_round()
        self.advance_clock(ISR_CHECK_MS)

    def _progress(self) -> tuple[object, ...]:
        """What a settling round can change; unchanged for a few rounds means stuck."""
        return (
            self.partition,
            tuple(
                (r.role, r.is_leader, r.log_end_offset, r.high_watermark, b.log.latest_epoch)
                for b in self.brokers.values()
                for r in (b.replica,)
            ),
            len(self.attempts),
        )

    def _settled(self) -> bool:
        p = self.partition
        if p.leader is None or self.network or self.attempts:
            return False
        leader = self.brokers[p.leader].replica
        end = leader.log_end_offset
        return (
            leader.is_leader
            and leader.role == self._role()
            and p.isr == p.replicas
            and all(b.replica.role == self._role() for b in self.brokers.values())
            and all(b.replica.log_end_offset == end for b in self.brokers.values())
            and all(b.replica.high_watermark == end for b in self.brokers.values())
        )

    def _describe(self) -> str:
        p = self.partition
        parts = [f"metadata: leader {p.leader} epoch {p.leader_epoch} isr {p.isr}"]
        for b in self.brokers.values():
            r = b.replica
            parts.append(
                f"broker {b.broker_id}: leader={r.is_leader} role epoch {r.role.leader_epoch} "
                f"leo {r.log_end_offset} hw {r.high_watermark} epochs {b.log.epoch_entries()}"
            )
        parts.append(f"{len(self.network)} messages, {len(self.attempts)} writes pending")
        return "; ".join(parts)

    def _check_settled_cluster(self) -> None:
        leader = self.brokers[self.partition.leader or 0]
        for write in self.writes:
            if write.acked is None:
                continue
            count = len(write.records)
            read = leader.replica.read(
                write.acked.base_offset, max_records=count, max_bytes=1 << 20
            )
            expected = b",".join(write.fragments_at(write.acked.base_offset))
            assert read.records_json == expected, (
                f"acknowledged write {write.write_id} reads back as {read.records_json!r}"
            )
        everything = leader.log.read_raw(leader.log.log_start_offset, 1 << 30)
        for b in self.brokers.values():
            assert b.log.read_raw(b.log.log_start_offset, 1 << 30) == everything, (
                f"broker {b.broker_id}'s log differs from leader {leader.broker_id}'s"
            )
        if self.idempotent_write is not None:
            raise AssertionError(
                f"the idempotent producer's retry of write {self.idempotent_write.write_id} "
                "was never acknowledged"
            )


class MinInsyncOne(ReplicationSimulation):
    MIN_INSYNC_REPLICAS = 1


_settings = settings(
    stateful_step_count=STEPS_BY_PROFILE.get(PROFILE, 100),
    max_examples=EXAMPLES_BY_PROFILE.get(PROFILE, settings().max_examples),
    # A failure is shrunk once and reported alone: one bug trips several invariants, and
    # shrinking each (tracing every line for the explain phase, too) ran past pytest's
    # timeout. The explain phase's report says little about a state machine anyway.
    report_multiple_bugs=False,
    phases=[p for p in settings().phases if p is not Phase.explain],
)
TestReplicationMinInsyncTwo = ReplicationSimulation.TestCase
TestReplicationMinInsyncTwo.settings = _settings
TestReplicationMinInsyncOne = MinInsyncOne.TestCase
TestReplicationMinInsyncOne.settings = _settings


# ---- runs that found bugs, replayed: each failed before its fix ------------------------------
# The steps are pasted as hypothesis printed them, shrunk; every invariant is checked after
# each step, and the end heals the cluster and reads every acknowledged record back.

SCENARIOS: dict[str, tuple[type[ReplicationSimulation], str]] = {
    # wait_for_commit waited on a replica that no longer led, for ever (c4a8320).
    "leadership moves while the leader fsyncs an acks=all write": (
        ReplicationSimulation,
        """
        produce_acks_all(count=1, pick=0)
        controller_acts(action='elect-leader', broker=2)
        deliver_everything_in_flight()
        """,
    ),
    # Deposed and re-elected during that fsync, the leader acknowledged the write in its new
    # epoch, after its follower truncation had removed it (c4a8320, with leader_epoch).
    "a leader deposed and re-elected during an fsync": (
        MinInsyncOne,
        """
        produce_acks_all(count=1, pick=0)
        controller_acts(action='elect-leader', broker=2)
        deliver_everything_in_flight()
        advance_clock(ms=100)
        follower_fetches(broker=1, max_bytes=1)
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        advance_clock(ms=100)
        controller_acts(action='elect-leader', broker=1)
        deliver_everything_in_flight()
        produce_then_replicate(count=1, idempotent=False, pick=0)
        """,
    ),
    # The leader proposes a shrink, the controller fences broker 2 meanwhile; the new role
    # reaches the leader first, then the stale refusal, which stopped it for good (10c3e0d).
    "a stale refusal arriving after the newer role": (
        ReplicationSimulation,
        """
        advance_clock(ms=10001)
        controller_acts(action='fence', broker=2)
        deliver_message(pick=0)
        deliver_message(pick=0)
        deliver_message(pick=2)
        """,
    ),
    # Broker 2 is elected and deposed before writing: as a follower it named its empty epoch
    # and was told to truncate at its own log end, for ever, out of the ISR (281c355).
    "elected and deposed before writing": (
        ReplicationSimulation,
        """
        produce_then_replicate(count=1, idempotent=False, pick=0)
        controller_acts(action='elect-leader', broker=2)
        deliver_everything_in_flight()
        controller_acts(action='elect-leader', broker=3)
        deliver_everything_in_flight()
        """,
    ),
    # The answer to an ISR expansion was lost; the leader dropped the change and committed
    # a write alone that the replica the controller had added lacked (9043f8c).
    "an ISR expansion whose answer is lost": (
        MinInsyncOne,
        """
        break_broker(broker=2, fault='stop-clean-shutdown')
        replicate_round()
        advance_clock(ms=10001)
        break_broker(broker=3, fault='stop-clean-shutdown')
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        advance_clock(ms=100)
        deliver_everything_in_flight()
        drop_message(pick=1)
        produce_then_replicate(count=1, idempotent=False, pick=0)
        break_broker(broker=1, fault='stop-clean-shutdown')
        repair_broker(broker=1, repair='restart')
        repair_broker(broker=3, repair='restart')
        deliver_everything_in_flight()
        """,
    ),
    # A producer snapshot taken before a truncation answered a retry at the wrong offsets
    # (6328fbb).
    "a producer snapshot older than a truncation": (
        MinInsyncOne,
        """
        produce_idempotent(count=1, pick=0)
        follower_fetches(broker=2, max_bytes=1048576)
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        checkpoint_broker(broker=2)
        controller_acts(action='elect-leader', broker=3)
        deliver_everything_in_flight()
        produce_acks_all(count=1, pick=0)
        produce_idempotent(count=1, pick=0)
        follower_fetches(broker=2, max_bytes=1048576)
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        follower_fetches(broker=2, max_bytes=1048576)
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        break_broker(broker=2, fault='stop-process-killed')
        repair_broker(broker=2, repair='restart')
        deliver_everything_in_flight()
        follower_fetches(broker=2, max_bytes=1048576)
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        deliver_everything_in_flight()
        controller_acts(action='elect-leader', broker=2)
        deliver_everything_in_flight()
        produce_idempotent(count=1, pick=0)
        replicate_round()
        replicate_round()
        """,
    ),
}


def parse_steps(text: str) -> list[tuple[str, dict[str, object]]]:
    """Steps as hypothesis prints them: `rule(name=value, ...)`, one a line."""
    steps = []
    for line in text.strip().splitlines():
        call = ast.parse(line.strip().removeprefix("state."), mode="eval").body
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name), line
        arguments = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        steps.append((call.func.id, arguments))
    return steps


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_run_that_found_a_bug_now_passes(name: str) -> None:
    machine_class, text = SCENARIOS[name]
    machine = machine_class()
    invariants = [
        getattr(machine, attribute)
        for attribute in dir(machine_class)
        if hasattr(getattr(machine_class, attribute), INVARIANT_MARKER)
    ]
    try:
        for rule_name, arguments in parse_steps(text):
            getattr(machine, rule_name)(**arguments)
            for check in invariants:
                check()
    finally:
        machine.teardown()  # heals, settles and checks, unless a step failed
