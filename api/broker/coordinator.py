"""The group coordinator: one broker per group answers its members.

Owns what must live in one place per group and is too frequent for the metadata log:
heartbeats (`GroupSessions`, in memory), members' read positions, and the batching of
offset commits. Every change of membership, every acknowledged generation and every
commit still goes through the metadata log, so another broker can take a group over
with nothing lost but positions not yet committed (members re-read from their
committed offsets: at-least-once). The rules themselves are in metadata/groups.py;
this module calls them and does the I/O.

A broker coordinates a group only while it holds its lease: cut off from the quorum,
it stops answering before the controller can fence it and hand its groups to another
broker, so two coordinators never serve one group's members at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from raftka.api.broker.commit_batcher import OffsetCommitBatcher
from raftka.api.http.partition_reader import PartitionRead, PartitionReader
from raftka.metadata.commands import (
    AcknowledgeGeneration,
    JoinGroup,
    LeaveGroup,
    OffsetCommit,
)
from raftka.metadata.errors import (
    CoordinatorNotAvailable,
    OffsetOutOfRange,
    RaftkaError,
    StaleGeneration,
    UnknownMember,
    UnknownPartition,
    UnknownTopic,
)
from raftka.metadata.events import (
    BrokerFenced,
    BrokerRegistered,
    BrokerUnfenced,
    GroupChanged,
)
from raftka.metadata.groups import (
    GroupRecord,
    GroupSessions,
    GroupState,
    MemberRecord,
    TopicPartition,
)
from raftka.metadata.model import MetadataState
from raftka.metadata.state import group_coordinator

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker

log = logging.getLogger(__name__)

# The events that can move a group's coordinator (the unfenced brokers changed).
BROKER_EVENTS = (BrokerFenced, BrokerUnfenced, BrokerRegistered)
EXPIRY_TICK_S = 0.25
MAX_MEMO_GROUPS = 10_000
# A tick this late means this process was stalled (paused, swapped): its members could
# not reach it either, so they get a fresh session instead of being expired for it.
STALLED_TICK_S = 1.0


@dataclass(slots=True)
class MemberPositions:
    # Where the member's next read of each partition starts.
    next: dict[TopicPartition, int] = field(default_factory=dict)
    # What the previous answer reached: auto_commit commits these first.
    reached: dict[TopicPartition, int] = field(default_factory=dict)
    rotation: int = 0  # which partition goes first, so none is starved by max_records


@dataclass(frozen=True, slots=True)
class ConsumeRequest:
    """One consume call: the member as the metadata had it when the call began."""

    group: GroupRecord
    member: MemberRecord
    positions: MemberPositions
    partitions: list[TopicPartition]
    max_records: int


@dataclass(frozen=True, slots=True)
class JoinRequest:
    topics: tuple[str, ...]
    session_timeout_ms: int
    auto_commit: bool
    auto_offset_reset: str
    assignor: str


def assignment_json(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        out.setdefault(topic, []).append(partition)
    return out


class GroupCoordinator:
    def __init__(
        self,
        broker: Broker,
        reader: PartitionReader,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._reader = reader
        self._clock = clock
        self._sessions = GroupSessions()
        self._positions: dict[tuple[str, str], MemberPositions] = {}
        self._acknowledging: dict[tuple[str, str, int], asyncio.Future[None]] = {}
        self._batcher = OffsetCommitBatcher(
            lambda entry: broker.submit(entry, resubmit=False), broker.broker_id
        )
        self._task: asyncio.Task[None] | None = None
        # Set when a group changes: its members' long-polls end so they see the change.
        self._changed: dict[str, asyncio.Event] = {}
        self._memo_brokers: object = None
        self._memo: dict[str, int | None] = {}
        broker.metadata.listeners.append(self._on_metadata)

    def _on_metadata(self, state: MetadataState, events: tuple[Any, ...], reset: bool) -> None:
        """Follows each applied command (on the loop, in commit order). Read positions are
        valid only while this broker coordinates their group without a break: once another
        broker has coordinated it, the members read on there and commit further, so a
        position kept from before would re-deliver below their commits. The state passed
        is the one right after the command, so a group that moves away and back within
        one batch of commands is still seen leaving."""
        if reset:
            self._positions.clear()
            changed: Iterable[str] = list(self._changed)
        else:
            changed = [e.group for e in events if isinstance(e, GroupChanged)]
            if any(isinstance(e, BROKER_EVENTS) for e in events):
                me = self._broker.broker_id
                for key in list(self._positions):
                    if group_coordinator(state, key[0]) != me:
                        del self._positions[key]
        for group_id in changed:
            event = self._changed.pop(group_id, None)
            if event is not None:
                event.set()

    async def _wait_for_change(self, group_id: str, timeout_s: float) -> None:
        event = self._changed.setdefault(group_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def start(self) -> None:
        self._batcher.start()
        self._task = asyncio.ensure_future(self._expiry_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._batcher.stop()

    # -- who coordinates ---------------------------------------------------------

    def coordinator_id(self, group_id: str) -> int | None:
        """Asked on every group request: remembered per group until the brokers change
        (the state keeps its brokers mapping object while other parts change)."""
        state = self._broker.state
        if self._memo_brokers is not state.brokers:
            self._memo_brokers, self._memo = state.brokers, {}
        if group_id not in self._memo:
            if len(self._memo) >= MAX_MEMO_GROUPS:
                self._memo.clear()
            self._memo[group_id] = group_coordinator(state, group_id)
        return self._memo[group_id]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _check_serving(self) -> None:
        if not self._broker.has_lease:
            raise CoordinatorNotAvailable(
                f"broker {self._broker.broker_id} cannot reach the metadata quorum"
            )

    def _group(self, group_id: str) -> GroupRecord | None:
        return self._broker.state.groups.get(group_id)

    def _member(self, group_id: str, member_id: str) -> tuple[GroupRecord, MemberRecord]:
        self._check_serving()
        group = self._group(group_id)
        member = None if group is None else group.members.get(member_id)
        if group is None or member is None:
            raise UnknownMember(
                f"member {member_id} is not in group {group_id} (it left or its session "
                "expired): join again"
            )
        self._sessions.heard_from(group_id, member_id, self._now_ms())
        return group, member

    # -- membership ----------------------------------------------------------------

    async def join(self, group_id: str, request: JoinRequest) -> dict[str, Any]:
        self._check_serving()
        member_id = uuid.uuid4().hex
        applied = await self._broker.submit(
            JoinGroup(
                group=group_id,
                member_id=member_id,
                topics=request.topics,
                session_timeout_ms=request.session_timeout_ms,
                auto_commit=request.auto_commit,
                auto_offset_reset=request.auto_offset_reset,
                assignor=request.assignor,
                coordinator=self._broker.broker_id,
                command_id=uuid.uuid4().hex,
            )
        )
        self._sessions.heard_from(group_id, member_id, self._now_ms())
        group = applied.state.groups[group_id]
        member = group.members[member_id]
        return {
            "member_id": member_id,
            "generation": group.generation,
            "assignment": assignment_json(member.assignment),
        }

    async def heartbeat(self, group_id: str, member_id: str, generation: int) -> dict[str, Any]:
        """The member's generation and assignment. A heartbeat at the current generation
        from a member that had not acknowledged it yet hands its revoked partitions on."""
        group, member = self._member(group_id, member_id)
        if generation == group.generation and member.member_generation < generation:
            await self._acknowledge(group_id, member_id, generation)
            group, member = self._member(group_id, member_id)
        return {
            "generation": group.generation,
            "assignment": assignment_json(member.assignment),
            "rebalance": group.rebalancing,
        }

    async def _acknowledge(self, group_id: str, member_id: str, generation: int) -> None:
        key = (group_id, member_id, generation)
        pending = self._acknowledging.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                self._broker.submit(
                    AcknowledgeGeneration(
                        group_id, member_id, generation, coordinator=self._broker.broker_id
                    )
                )
            )
            self._acknowledging[key] = pending
            pending.add_done_callback(lambda _: self._acknowledging.pop(key, None))
        await asyncio.shield(pending)

    async def leave(self, group_id: str, member_id: str) -> None:
        self._member(group_id, member_id)
        await self._broker.submit(
            LeaveGroup(
                group_id,
                (member_id,),
                coordinator=self._broker.broker_id,
                command_id=uuid.uuid4().hex,
            )
        )
        self._positions.pop((group_id, member_id), None)

    # -- offsets -------------------------------------------------------------------

    async def commit(
        self,
        group_id: str,
        member_id: str,
        generation: int,
        offsets: tuple[tuple[str, int, int], ...],
    ) -> None:
        self._member(group_id, member_id)
        await self._batcher.commit(OffsetCommit(group_id, member_id, generation, offsets))

    async def committed(self, group_id: str) -> list[dict[str, Any]]:
        """Committed offsets with lag = high watermark - committed offset (null when the
        partition's leader cannot be asked right now)."""
        self._check_serving()
        group = self._group(group_id)
        offsets = sorted(group.offsets.items()) if group else []

        async def lag(topic: str, partition: int, offset: int) -> int | None:
            try:
                return max(0, await self._reader.high_watermark(topic, partition) - offset)
            except RaftkaError:
                return None

        lags = await asyncio.gather(*(lag(t, p, o) for (t, p), o in offsets))
        return [
            {"topic": t, "partition": p, "offset": o, "lag": lag_}
            for ((t, p), o), lag_ in zip(offsets, lags, strict=True)
        ]

    def describe(self, group_id: str) -> dict[str, Any]:
        self._check_serving()
        group = self._group(group_id)
        me = self._broker.broker_id
        if group is None:
            return {
                "state": GroupState.EMPTY.value,
                "generation": 0,
                "members": [],
                "coordinator": me,
            }
        return {
            "state": group.state.value,
            "generation": group.generation,
            "assignor": group.assignor,
            "coordinator": me,
            "members": [
                {
                    "member_id": m.member_id,
                    "topics": list(m.topics),
                    "assignment": assignment_json(m.assignment),
                }
                for m in (group.members[i] for i in sorted(group.members))
            ],
        }

    # -- consuming -----------------------------------------------------------------

    async def consume(
        self, group_id: str, member_id: str, max_records: int, max_wait_ms: int
    ) -> list[dict[str, Any]]:
        """Records of the member's partitions from its positions: first whatever is
        readable now on any of them; only when none has anything, a long-poll across all
        of them. Never a record of a partition the member does not own when answering."""
        group, member = self._member(group_id, member_id)
        positions = self._positions.setdefault((group_id, member_id), MemberPositions())
        if member.auto_commit and positions.reached:
            await self._auto_commit(group, member, positions)
            group, member = self._member(group_id, member_id)
        partitions = list(member.assignment)
        for tp in [tp for tp in positions.next if tp not in partitions]:
            del positions.next[tp]  # given up: a later owner starts from the committed offset
        if not partitions:
            # Nothing to read until the group hands this member something: wait for a change.
            wait_s = min(max_wait_ms, self._broker.settings.max_fetch_wait_ms) / 1000
            if wait_s > 0:
                await self._wait_for_change(group_id, wait_s)
            return []
        call = ConsumeRequest(group, member, positions, partitions, max_records)
        reads = await self._read_all(call)
        if not any(r.records for r in reads.values()) and max_wait_ms > 0:
            reads = await self._first_ready(call, max_wait_ms)
        # Ownership again, after the awaits: a rebalance may have moved a partition.
        group, member = self._member(group_id, member_id)
        still_owned = set(member.assignment)
        return self._answer(positions, reads, still_owned, max_records)

    async def _auto_commit(
        self, group: GroupRecord, member: MemberRecord, positions: MemberPositions
    ) -> None:
        owned = set(member.owned)
        # Only what moved: an idle member's answers must not each cost a metadata write.
        offsets = tuple(
            sorted(
                (t, p, o)
                for (t, p), o in positions.reached.items()
                if (t, p) in owned and group.offsets.get((t, p)) != o
            )
        )
        positions.reached = {}
        if not offsets:
            return
        # A generation that moved on makes the commit stale: the records are delivered
        # again to the partition's next owner (at-least-once), so that is no error here.
        with contextlib.suppress(StaleGeneration):
            await self._batcher.commit(
                OffsetCommit(group.group_id, member.member_id, group.generation, offsets)
            )

    async def _start_offset(
        self, group: GroupRecord, member: MemberRecord, tp: TopicPartition
    ) -> int:
        """The committed offset, else auto_offset_reset's. Earliest reads from 0: a log
        that starts later answers OFFSET_OUT_OF_RANGE with its log start offset."""
        committed = group.offsets.get(tp)
        if committed is not None:
            return committed
        if member.auto_offset_reset == "latest":
            return await self._reader.high_watermark(*tp)
        return 0

    async def _read(
        self, call: ConsumeRequest, tp: TopicPartition, max_wait_ms: int
    ) -> PartitionRead | None:
        """None when the partition cannot be read right now (no leader, deleted): the
        member's other partitions are still served."""
        positions, reset = call.positions, call.member.auto_offset_reset
        try:
            offset = positions.next.get(tp)
            if offset is None:
                offset = await self._start_offset(call.group, call.member, tp)
            try:
                read = await self._reader.read(*tp, offset, call.max_records, max_wait_ms)
            except OffsetOutOfRange as exc:
                # Kafka's auto.offset.reset: the position fell out of the log (retention,
                # a truncated tail) or none was known yet.
                bound = "high_watermark" if reset == "latest" else "log_start_offset"
                offset = int(exc.details[bound])
                read = await self._reader.read(*tp, offset, call.max_records, max_wait_ms)
            # Fixed now, so "latest" is resolved once and nothing produced between two
            # reads is skipped; _answer moves it past what it returns.
            positions.next[tp] = offset
            return read
        except (UnknownTopic, UnknownPartition):
            return None
        except RaftkaError as exc:
            if not exc.retriable:
                raise
            log.debug("cannot read %s-%s for group %s: %s", *tp, call.group.group_id, exc)
            return None

    async def _read_all(self, call: ConsumeRequest) -> dict[TopicPartition, PartitionRead]:
        """Whatever every partition has now, without waiting."""
        results = await asyncio.gather(*(self._read(call, tp, 0) for tp in call.partitions))
        return {tp: r for tp, r in zip(call.partitions, results, strict=True) if r is not None}

    async def _first_ready(
        self, call: ConsumeRequest, max_wait_ms: int
    ) -> dict[TopicPartition, PartitionRead]:
        """Long-polls every partition; answers with the first that has records, or with
        nothing once the group changes (the member may have lost or gained partitions)."""
        tasks: dict[asyncio.Future[PartitionRead | None], TopicPartition] = {
            asyncio.ensure_future(self._read(call, tp, max_wait_ms)): tp for tp in call.partitions
        }
        wait_s = min(max_wait_ms, self._broker.settings.max_fetch_wait_ms) / 1000
        changed = asyncio.ensure_future(self._wait_for_change(call.group.group_id, wait_s))
        out: dict[TopicPartition, PartitionRead] = {}
        pending: set[asyncio.Future[Any]] = {*tasks, changed}
        try:
            while not out and not changed.done() and len(pending) > 1:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is changed:
                        continue
                    read = task.result()
                    if read is not None and read.records:
                        out[tasks[task]] = read
        finally:
            for task in pending:
                task.cancel()
        return out

    def _answer(
        self,
        positions: MemberPositions,
        reads: dict[TopicPartition, PartitionRead],
        still_owned: set[TopicPartition],
        max_records: int,
    ) -> list[dict[str, Any]]:
        order = sorted(tp for tp in reads if tp in still_owned)
        if order:
            positions.rotation = (positions.rotation + 1) % len(order)
            order = order[positions.rotation :] + order[: positions.rotation]
        out: list[dict[str, Any]] = []
        for tp in order:
            read = reads[tp]
            room = max_records - len(out)
            if room <= 0:
                break
            taken = read.records[:room]
            for record in taken:
                record["topic"], record["partition"] = tp
            out.extend(taken)
            if len(taken) < len(read.records):
                positions.next[tp] = taken[-1]["offset"] + 1
            elif read.records:
                positions.next[tp] = read.next_offset
        positions.reached = {tp: o for tp, o in positions.next.items() if tp in still_owned}
        return out

    # -- expiry --------------------------------------------------------------------

    async def _expiry_loop(self) -> None:
        last_tick = self._clock()
        while True:
            await asyncio.sleep(EXPIRY_TICK_S)
            now = self._clock()
            stalled = now - last_tick > STALLED_TICK_S
            last_tick = now
            try:
                await self._expire(stalled)
            except Exception:
                log.exception("expiring group members failed")

    async def _expire(self, stalled: bool) -> None:
        broker = self._broker
        if stalled or not broker.has_lease or not broker.ready:
            self._sessions = GroupSessions()  # everyone gets a fresh session when we are back
            return
        # (Positions of groups that moved away are dropped as the move applies, in
        # _on_metadata; here only those of members that are gone.)
        mine = [
            g
            for g in broker.state.groups.values()
            if g.members and self.coordinator_id(g.group_id) == broker.broker_id
        ]
        live = {(g.group_id, m) for g in mine for m in g.members}
        for key in [k for k in self._positions if k not in live]:
            del self._positions[key]
        for group_id, member_ids in self._sessions.expired(mine, self._now_ms()).items():
            log.info("group %s: members %s missed their session timeout", group_id, member_ids)
            with contextlib.suppress(RaftkaError):
                await broker.submit(
                    LeaveGroup(
                        group_id,
                        tuple(member_ids),
                        coordinator=broker.broker_id,
                        command_id=uuid.uuid4().hex,
                    )
                )
