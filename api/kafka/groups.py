"""The Kafka protocol's consumer groups at their coordinator: FindCoordinator, JoinGroup,
SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch.

A group's membership lives in its coordinator's memory (group_state.py), not in the
metadata log: the classic protocol's members compute their own assignment, which the
HTTP groups' server-side assignor cannot share. The coordinator is the broker the HTTP
groups use for the same group id, and committed offsets go to the same metadata records
(GroupCoordinator.commit_external), so both faces see one set of offsets. When the
coordinator moves, the members rejoin at the new one (NOT_COORDINATOR), as in Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka.protocol.consumer import (
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)
from kafka.protocol.metadata import FindCoordinatorResponse

from raftka.api.acl import Operation
from raftka.api.kafka import errors
from raftka.api.kafka.access import Access
from raftka.api.kafka.group_state import GroupPhase, JoinAnswer, KafkaGroup
from raftka.api.kafka.metadata import kafka_listeners
from raftka.metadata.errors import RaftkaError
from raftka.metadata.groups import validate_group_id

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker
    from raftka.api.broker.coordinator import GroupCoordinator

TICK_S = 0.1  # how often rebalances are checked for completion and sessions for expiry
MIN_SESSION_TIMEOUT_MS = 1_000
MAX_SESSION_TIMEOUT_MS = 1_800_000
NO_OFFSET = -1
GROUP_KEY_TYPE = 0

CommitTopic_ = OffsetCommitResponse.OffsetCommitResponseTopic
CommitPartition_ = CommitTopic_.OffsetCommitResponsePartition
FetchTopic_ = OffsetFetchResponse.OffsetFetchResponseTopic
FetchPartition_ = FetchTopic_.OffsetFetchResponsePartition


class KafkaGroupCoordinator:
    def __init__(
        self,
        broker: Broker,
        coordinator: GroupCoordinator,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._coordinator = coordinator
        self._clock = clock
        self._groups: dict[str, KafkaGroup] = {}
        self._joins: dict[tuple[str, str], asyncio.Future[JoinAnswer]] = {}
        self._syncs: dict[tuple[str, str], asyncio.Future[tuple[int, bytes]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._coordinator.set_kafka_members(self.has_members)
        self._task = asyncio.ensure_future(self._tick_loop())

    def has_members(self, group_id: str) -> bool:
        group = self._groups.get(group_id)
        return group is not None and bool(group.members)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            for group in list(self._groups.values()):
                group.expire(now)
                self._progress(group)

    def _progress(self, group: KafkaGroup) -> None:
        """Answers the joins a completed rebalance waits on; ends syncs a new rebalance
        overtook."""
        if group.phase is GroupPhase.PREPARING_REBALANCE:
            for key in [k for k in self._syncs if k[0] == group.group_id]:
                self._answer_sync(key, errors.REBALANCE_IN_PROGRESS, b"")
        if group.ready_to_complete(self._clock()):
            for member_id, answer in group.complete().items():
                future = self._joins.pop((group.group_id, member_id), None)
                if future is not None and not future.done():
                    future.set_result(answer)
        if group.phase is GroupPhase.EMPTY and not group.members:
            self._groups.pop(group.group_id, None)

    def _answer_sync(self, key: tuple[str, str], code: int, assignment: bytes) -> None:
        future = self._syncs.pop(key, None)
        if future is not None and not future.done():
            future.set_result((code, assignment))

    def _coordinator_error(self, group_id: str, access: Access) -> int:
        if validate_group_id(group_id) is not None:
            return errors.INVALID_GROUP_ID
        if not access.may_use_group(group_id):
            return errors.GROUP_AUTHORIZATION_FAILED
        if not self._broker.has_lease:
            return errors.COORDINATOR_NOT_AVAILABLE
        if self._coordinator.coordinator_id(group_id) != self._broker.broker_id:
            self._groups.pop(group_id, None)  # moved away: members rejoin there
            return errors.NOT_COORDINATOR
        return errors.NONE

    # -- FindCoordinator -----------------------------------------------------------

    def find_coordinator(self, broker: Broker, request: Any, version: int, access: Access) -> Any:
        node, host, port = -1, "", -1
        code = errors.NONE
        if request.key_type != GROUP_KEY_TYPE:
            code = errors.INVALID_REQUEST  # transactions are not supported
        elif validate_group_id(request.key) is not None:
            code = errors.INVALID_GROUP_ID
        elif not access.may_use_group(request.key):
            code = errors.GROUP_AUTHORIZATION_FAILED
        else:
            coordinator = self._coordinator.coordinator_id(request.key)
            address = kafka_listeners(broker).get(coordinator) if coordinator is not None else None
            if coordinator is None or address is None:
                code = errors.COORDINATOR_NOT_AVAILABLE
            else:
                node, (host, port) = coordinator, address
        return FindCoordinatorResponse(
            throttle_time_ms=0,
            error_code=code,
            error_message=None,
            node_id=node,
            host=host,
            port=port,
        )

    # -- membership ------------------------------------------------------------------

    async def join_group(self, broker: Broker, request: Any, version: int, access: Access) -> Any:
        group_id = request.group_id
        answer = await self._join(group_id, request, version, access)
        return JoinGroupResponse(
            throttle_time_ms=0,
            error_code=answer.error_code,
            generation_id=answer.generation,
            protocol_name=answer.protocol or "",
            leader=answer.leader,
            member_id=answer.member_id,
            members=[
                JoinGroupResponse.JoinGroupResponseMember(
                    member_id=m, group_instance_id=None, metadata=md
                )
                for m, md in answer.members
            ],
        )

    async def _join(self, group_id: str, request: Any, version: int, access: Access) -> JoinAnswer:
        code = self._coordinator_error(group_id, access)
        if code != errors.NONE:
            return JoinAnswer(code, member_id=request.member_id)
        if not MIN_SESSION_TIMEOUT_MS <= request.session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            return JoinAnswer(errors.INVALID_SESSION_TIMEOUT, member_id=request.member_id)
        record = self._broker.state.groups.get(group_id)
        if record is not None and record.members:  # an HTTP group uses this id
            return JoinAnswer(errors.INCONSISTENT_GROUP_PROTOCOL, member_id=request.member_id)
        group = self._groups.setdefault(group_id, KafkaGroup(group_id))
        member_id = request.member_id or f"member-{uuid.uuid4().hex}"
        if request.member_id and request.member_id not in group.members:
            return JoinAnswer(errors.UNKNOWN_MEMBER_ID, member_id=request.member_id)
        rebalance_ms = request.rebalance_timeout_ms if version >= 1 else request.session_timeout_ms
        code = group.join(
            member_id,
            request.protocol_type,
            tuple((p.name, bytes(p.metadata)) for p in request.protocols),
            request.session_timeout_ms / 1000,
            rebalance_ms / 1000,
            self._clock(),
        )
        if code != errors.NONE:
            return JoinAnswer(code, member_id=member_id)
        key = (group_id, member_id)
        previous = self._joins.pop(key, None)
        if previous is not None and not previous.done():
            previous.set_result(JoinAnswer(errors.UNKNOWN_MEMBER_ID, member_id=member_id))
        future: asyncio.Future[JoinAnswer] = asyncio.get_running_loop().create_future()
        self._joins[key] = future
        self._progress(group)
        return await future

    async def sync_group(self, broker: Broker, request: Any, version: int, access: Access) -> Any:
        code, assignment = await self._sync(request, access)
        return SyncGroupResponse(throttle_time_ms=0, error_code=code, assignment=assignment)

    async def _sync(self, request: Any, access: Access) -> tuple[int, bytes]:
        group_id, member_id = request.group_id, request.member_id
        code = self._coordinator_error(group_id, access)
        group = self._groups.get(group_id)
        if code != errors.NONE:
            return code, b""
        if group is None:
            return errors.UNKNOWN_MEMBER_ID, b""
        code = group.check_member(member_id, request.generation_id, self._clock())
        if code != errors.NONE:
            return code, b""
        if group.phase is GroupPhase.STABLE:
            return errors.NONE, group.members[member_id].assignment
        if group.sync(member_id, {a.member_id: bytes(a.assignment) for a in request.assignments}):
            for m in group.members.values():
                self._answer_sync((group_id, m.member_id), errors.NONE, m.assignment)
            return errors.NONE, group.members[member_id].assignment
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._syncs[(group_id, member_id)] = future
        return await future

    def heartbeat(self, broker: Broker, request: Any, version: int, access: Access) -> Any:
        code = self._coordinator_error(request.group_id, access)
        group = self._groups.get(request.group_id)
        if code == errors.NONE:
            code = (
                errors.UNKNOWN_MEMBER_ID
                if group is None
                else group.check_member(request.member_id, request.generation_id, self._clock())
            )
        return HeartbeatResponse(throttle_time_ms=0, error_code=code)

    def leave_group(self, broker: Broker, request: Any, version: int, access: Access) -> Any:
        code = self._coordinator_error(request.group_id, access)
        group = self._groups.get(request.group_id)
        if code == errors.NONE:
            code = (
                errors.UNKNOWN_MEMBER_ID
                if group is None
                else group.leave(request.member_id, self._clock())
            )
            if group is not None:
                self._progress(group)
        return LeaveGroupResponse(throttle_time_ms=0, error_code=code)

    # -- offsets -----------------------------------------------------------------------

    async def offset_commit(
        self, broker: Broker, request: Any, version: int, access: Access
    ) -> Any:
        group_id = request.group_id
        code = self._coordinator_error(group_id, access)
        generation = request.generation_id_or_member_epoch
        if code == errors.NONE and (generation >= 0 or request.member_id):
            group = self._groups.get(group_id)
            code = (
                errors.UNKNOWN_MEMBER_ID
                if group is None
                else group.check_member(request.member_id, generation, self._clock())
            )
        # A topic the user may not consume is refused alone; the others are committed.
        refused = {t.name for t in request.topics if not access.may(Operation.CONSUME, t.name)}
        offsets = tuple(
            (t.name, p.partition_index, p.committed_offset)
            for t in request.topics
            if t.name not in refused
            for p in t.partitions
        )
        if code == errors.NONE and offsets:
            try:
                await self._coordinator.commit_external(group_id, offsets)
            except RaftkaError as exc:
                code = errors.error_code(exc)
        return OffsetCommitResponse(
            throttle_time_ms=0,
            topics=[
                CommitTopic_(
                    name=t.name,
                    partitions=[
                        CommitPartition_(
                            partition_index=p.partition_index,
                            error_code=errors.TOPIC_AUTHORIZATION_FAILED
                            if code == errors.NONE and t.name in refused
                            else code,
                        )
                        for p in t.partitions
                    ],
                )
                for t in request.topics
            ],
        )

    def offset_fetch(self, broker: Broker, request: Any, version: int, access: Access) -> Any:
        group_id = request.group_id
        code = self._coordinator_error(group_id, access)
        record = broker.state.groups.get(group_id) if code == errors.NONE else None
        # Offsets of topics the user may not consume stay hidden (left out when all are
        # asked for, refused when named), as in Kafka.
        committed = {
            (topic, partition): offset
            for (topic, partition), offset in (record.offsets.items() if record else ())
            if access.may(Operation.CONSUME, topic)
        }
        if request.topics is None:
            wanted: dict[str, list[int]] = {}
            for topic, partition in sorted(committed):
                wanted.setdefault(topic, []).append(partition)
        else:
            wanted = {t.name: list(t.partition_indexes) for t in request.topics}
        partition_code = code if version < 2 else errors.NONE
        return OffsetFetchResponse(
            throttle_time_ms=0,
            error_code=code,
            topics=[
                FetchTopic_(
                    name=topic,
                    partitions=[
                        FetchPartition_(
                            partition_index=p,
                            committed_offset=committed.get((topic, p), NO_OFFSET),
                            committed_leader_epoch=-1,
                            metadata="",
                            error_code=partition_code
                            if access.may(Operation.CONSUME, topic)
                            else errors.TOPIC_AUTHORIZATION_FAILED,
                        )
                        for p in partitions
                    ],
                )
                for topic, partitions in wanted.items()
            ],
        )
