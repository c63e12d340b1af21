"""Controller decisions: which commands the Raft leader should propose, and when.

This module owns the controller's pure judgements: broker liveness (session
timeouts), preferred leader elections, and planning a CreateTopic. It must never
read a clock (`now_ms` comes in), propose anything itself, or do I/O: the broker
that leads the Raft quorum turns these decisions into proposed commands.
Command ids come from the caller's `new_command_id` (default: none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from raftka.metadata.commands import (
    CommandTooLarge,
    CreateTopic,
    ElectLeader,
    FenceBroker,
    encode_command,
)
from raftka.metadata.model import MetadataState, TopicConfig
from raftka.metadata.placement import assign_replicas
from raftka.metadata.state import ErrorCode, Rejected

DEFAULT_BROKER_SESSION_TIMEOUT_MS = 9000  # Kafka's broker.session.timeout.ms


def no_command_id() -> str:
    return ""


class BrokerLiveness:
    """When the controller last heard from each broker, on the controller's clock."""

    def __init__(self, session_timeout_ms: int = DEFAULT_BROKER_SESSION_TIMEOUT_MS) -> None:
        if session_timeout_ms <= 0:
            raise ValueError(f"session_timeout_ms must be > 0, got {session_timeout_ms}")
        self.session_timeout_ms = session_timeout_ms
        self._last_heard_ms: dict[int, int] = {}

    def reset(self, now_ms: int, broker_ids: Iterable[int]) -> None:
        """Start of a new controller's term: everyone gets a full session.

        A new controller has heard from nobody yet; fencing on its empty memory
        would fence the whole cluster (KRaft does the same).
        """
        self._last_heard_ms = dict.fromkeys(broker_ids, now_ms)

    def heard_from(self, broker_id: int, now_ms: int) -> None:
        # max(): a late-delivered older timestamp must not shorten a session.
        self._last_heard_ms[broker_id] = max(now_ms, self._last_heard_ms.get(broker_id, now_ms))

    def last_heard_ms(self, broker_id: int) -> int | None:
        return self._last_heard_ms.get(broker_id)

    def expired(self, state: MetadataState, now_ms: int) -> list[int]:
        """Unfenced brokers silent for longer than the session timeout, sorted.

        A broker this controller has never heard of (registered after reset) gets a
        full session starting now, as reset would have given it.
        """
        out = []
        for broker_id in sorted(state.brokers):
            if state.brokers[broker_id].fenced:
                continue
            last = self._last_heard_ms.setdefault(broker_id, now_ms)
            if now_ms - last > self.session_timeout_ms:
                out.append(broker_id)
        return out


def fence_commands(
    liveness: BrokerLiveness,
    state: MetadataState,
    now_ms: int,
    new_command_id: Callable[[], str] = no_command_id,
) -> list[FenceBroker]:
    """A FenceBroker for every broker whose session expired."""
    return [FenceBroker(b, command_id=new_command_id()) for b in liveness.expired(state, now_ms)]


def preferred_leader_elections(
    state: MetadataState, new_command_id: Callable[[], str] = no_command_id
) -> list[ElectLeader]:
    """Move leadership back to each partition's first replica where it can lead.

    Only where the preferred replica is unfenced, in the isr and not already the
    leader (Kafka's auto.leader.rebalance). Sorted by topic and partition.
    """
    out = []
    for name in sorted(state.topics):
        for p in state.topics[name].partitions:
            preferred = p.replicas[0]
            if p.leader != preferred and preferred in p.isr and not state.brokers[preferred].fenced:
                out.append(
                    ElectLeader(
                        name,
                        p.partition,
                        preferred,
                        expected_leader_epoch=p.leader_epoch,
                        command_id=new_command_id(),
                    )
                )
    return out


def plan_create_topic(
    state: MetadataState,
    name: str,
    topic_id: str,
    partitions: int,
    replication_factor: int,
    config: TopicConfig,
    command_id: str = "",
) -> CreateTopic | Rejected:
    """The CreateTopic to propose, placing replicas on the unfenced brokers.

    The start index is the number of existing topics, so successive topics start
    their leaders on different brokers without any randomness. A topic whose command
    does not fit one metadata log entry (commands.MAX_COMMAND_TEXT_CHARS, compressed)
    is rejected with INVALID_REQUEST. Measured at replication factor 3 (compressed
    text): 100,000 partitions, the state machine's maximum, fit on 3 brokers (~3 KB)
    and on 30 (~13 KB); 10,000 fit on up to about 2,000 brokers (~51 KB at 2,000,
    ~84 KB at 2,200); on 100 to 1,000 brokers the largest topic is 16,000-19,000
    partitions. Very high replication factors also fail: 10,000 x 60 on 60 brokers.
    """
    available = sorted(b for b, r in state.brokers.items() if not r.fenced)
    if partitions < 1:
        return Rejected(ErrorCode.INVALID_REQUEST, f"partitions must be >= 1, got {partitions}")
    if not 1 <= replication_factor <= len(available):
        return Rejected(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"replication_factor {replication_factor} needs 1-{len(available)} available brokers",
        )
    start_index = len(state.topics) % len(available)
    assignment = assign_replicas(available, partitions, replication_factor, start_index)
    command = CreateTopic(name, topic_id, config, assignment, command_id=command_id)
    try:
        encode_command(command)
    except CommandTooLarge as exc:
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"topic {name!r} with {partitions} partitions x {replication_factor} replicas "
            f"on {len(available)} brokers does not fit one metadata log entry ({exc}): "
            "ask for fewer partitions or replicas",
        )
    return command
