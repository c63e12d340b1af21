"""Controller decisions: which commands the Raft leader should propose, and when.

This module owns the controller's pure judgements: broker liveness (heartbeat
session timeouts, and session connections for fast fencing), preferred leader
elections, and planning a CreateTopic. It must never read a clock (`now_ms` comes
in), open a connection, propose anything itself, or do I/O: the broker that leads
the Raft quorum reports connections and heartbeats, and turns these decisions into
proposed commands. Command ids come from the caller's `new_command_id` (default:
none).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from raftka.metadata.commands import (
    CommandTooLarge,
    ContinueFence,
    CreateTopic,
    ElectLeader,
    FenceBroker,
    encode_command,
)
from raftka.metadata.events import PartitionChanged, TopicCreated
from raftka.metadata.model import MetadataState, PartitionRecord, TopicConfig
from raftka.metadata.placement import assign_replicas
from raftka.metadata.state import ErrorCode, Rejected

DEFAULT_BROKER_SESSION_TIMEOUT_MS = 9000  # Kafka's broker.session.timeout.ms
# A live broker whose session connection drops reconnects within ~100 ms; a killed
# one never does. 500 ms tells them apart with margin, and with the controller's
# 250 ms tick still fences a killed broker within ~0.8 s.
SESSION_CLOSED_GRACE_MS = 500


def no_command_id() -> str:
    return ""


class BrokerSessions:
    """Which brokers hold a session connection to this controller, and since when
    the others' has been closed.

    A session is one long-lived connection a broker keeps open to the controller.
    A killed process's socket closes at once; a paused or starved one's stays open.
    So a closed session that is not reopened soon means a dead broker, while an open
    one says nothing either way (the heartbeat timeout covers that). Pure: the
    caller reports opens and closes with its own clock.
    """

    def __init__(self) -> None:
        # Counts, not flags: a reconnecting broker may open its new session before
        # the controller notices the old one closing.
        self._open_count: dict[int, int] = {}
        self._closed_at_ms: dict[int, int] = {}

    def opened(self, broker_id: int) -> None:
        self._open_count[broker_id] = self._open_count.get(broker_id, 0) + 1
        self._closed_at_ms.pop(broker_id, None)

    def closed(self, broker_id: int, now_ms: int) -> None:
        count = self._open_count.get(broker_id, 0) - 1
        if count > 0:
            self._open_count[broker_id] = count
            return
        self._open_count.pop(broker_id, None)
        self._closed_at_ms.setdefault(broker_id, now_ms)

    def reset(self) -> None:
        """A new controller's term. Sessions that stay open carry over (a broker may
        connect before this node's first tick as controller); closes seen before are
        forgotten, since brokers close their session to a node when it stops being
        the controller. A broker that opens none is left to the heartbeat timeout: a
        broker paused across the change of controller must not be fenced for it."""
        self._closed_at_ms.clear()

    def forget(self, broker_id: int) -> None:
        """The broker is fenced: its closed session has been acted upon. It comes
        back by registering or heartbeating, maybe before it reconnects, and only a
        new close may fence it again."""
        self._closed_at_ms.pop(broker_id, None)

    def expired(self, broker_id: int, now_ms: int) -> bool:
        if broker_id in self._open_count:
            return False
        closed_at = self._closed_at_ms.get(broker_id)
        return closed_at is not None and now_ms - closed_at > SESSION_CLOSED_GRACE_MS


class BrokerLiveness:
    """Whether each broker is alive, as the controller sees it on its own clock.

    Two rules, either of which expires an unfenced broker:
    - the heartbeat timeout: no heartbeat applied for `session_timeout_ms` (a
      paused, starved or partitioned broker is fenced only then);
    - with `track_sessions`, a session closed for SESSION_CLOSED_GRACE_MS and not
      reopened.

    Neither applies to `controller_id`, this controller's own broker: it is alive, since it
    runs this check. Its own heartbeats may be late to be seen (its event loop busy with a
    large metadata change), and fencing itself then would move every partition it leads for
    nothing. If it is cut off from the quorum instead, its heartbeats stop committing, its
    lease runs out, and the next controller fences it.

    The death of the previous controller is reported as a close too
    (`session_closed` right after `reset`): the new controller, as a broker, had its
    own session to it, and saw that connection break without the clean end a
    controller that steps down sends. A previous controller that is only paused
    keeps that connection open and is left to the heartbeat timeout.
    """

    def __init__(
        self,
        session_timeout_ms: int = DEFAULT_BROKER_SESSION_TIMEOUT_MS,
        *,
        controller_id: int | None = None,
        track_sessions: bool = False,
    ) -> None:
        if session_timeout_ms <= 0:
            raise ValueError(f"session_timeout_ms must be > 0, got {session_timeout_ms}")
        self.session_timeout_ms = session_timeout_ms
        self.controller_id = controller_id
        self.track_sessions = track_sessions
        self._last_heard_ms: dict[int, int] = {}
        self._sessions = BrokerSessions()

    def reset(self, now_ms: int, broker_ids: Iterable[int]) -> None:
        """Start of a new controller's term: everyone gets a full heartbeat session.

        A new controller has heard from nobody yet; fencing on its empty memory
        would fence the whole cluster (KRaft does the same). Open sessions carry over
        (BrokerSessions.reset).
        """
        self._last_heard_ms = dict.fromkeys(broker_ids, now_ms)
        self._sessions.reset()

    def heard_from(self, broker_id: int, now_ms: int) -> None:
        # max(): a late-delivered older timestamp must not shorten a session.
        self._last_heard_ms[broker_id] = max(now_ms, self._last_heard_ms.get(broker_id, now_ms))

    def session_opened(self, broker_id: int, now_ms: int) -> None:
        """A broker opened its session connection to this controller. (`now_ms` is
        unused, an open session has no deadline, but keeps the calls symmetric.)"""
        self._sessions.opened(broker_id)

    def session_closed(self, broker_id: int, now_ms: int) -> None:
        """A broker's session connection to this controller closed (EOF or error)."""
        self._sessions.closed(broker_id, now_ms)

    def last_heard_ms(self, broker_id: int) -> int | None:
        return self._last_heard_ms.get(broker_id)

    def expired(self, state: MetadataState, now_ms: int) -> list[int]:
        """Unfenced brokers that the heartbeat or session rules declare dead, sorted.

        A broker this controller has never heard of (registered after reset) gets a
        full heartbeat session starting now, as reset would have given it, and no
        session deadline until it opens (then closes) a session.
        """
        out = []
        for broker_id in sorted(state.brokers):
            if state.brokers[broker_id].fenced:
                self._sessions.forget(broker_id)
                continue
            if broker_id == self.controller_id:
                continue  # see the class docstring: a controller never fences itself
            last = self._last_heard_ms.setdefault(broker_id, now_ms)
            if now_ms - last > self.session_timeout_ms or self._session_expired(broker_id, now_ms):
                out.append(broker_id)
        return out

    def _session_expired(self, broker_id: int, now_ms: int) -> bool:
        return (
            self.track_sessions
            and broker_id != self.controller_id
            and self._sessions.expired(broker_id, now_ms)
        )


def fence_commands(
    liveness: BrokerLiveness,
    state: MetadataState,
    now_ms: int,
    new_command_id: Callable[[], str] = no_command_id,
) -> list[FenceBroker]:
    """A FenceBroker for every broker whose session expired."""
    return [FenceBroker(b, command_id=new_command_id()) for b in liveness.expired(state, now_ms)]


def fence_continuations(
    state: MetadataState, new_command_id: Callable[[], str] = no_command_id
) -> list[ContinueFence]:
    """The next chunk of every fence in progress (a big fence takes several entries: the
    controller proposes them one after the other, other entries in between)."""
    return [ContinueFence(b, command_id=new_command_id()) for b in sorted(state.fencing)]


def preferred_leader_elections(
    state: MetadataState, new_command_id: Callable[[], str] = no_command_id
) -> list[ElectLeader]:
    """Move leadership back to each partition's first replica where it can lead.

    Only where the preferred replica is unfenced, in the isr and not already the
    leader (Kafka's auto.leader.rebalance). Sorted by topic and partition.
    """
    return [
        _elect_preferred(name, p, new_command_id)
        for name in sorted(state.topics)
        for p in state.topics[name].partitions
        if _preferred_can_lead(state, p)
    ]


class PreferredLeaderWatch:
    """The partitions not led by their preferred (first) replica, kept up to date from the
    events of each applied command, so that the controller's periodic check costs the
    partitions out of place, not the cluster (KRaft keeps such an index, `imbalancedPartitions`).

    `follow` takes each applied command's state and events in commit order, or a snapshot
    install (`reset`), after which the whole state is scanned once. A deleted topic's
    entries go at the next `elections`, which finds no topic for them. `elections` is
    `preferred_leader_elections` restricted to the partitions in the index. Pure: no clock,
    no I/O. `partitions_visited` counts the partition records looked at (a metric).
    """

    def __init__(self) -> None:
        self._misplaced: set[tuple[str, int]] = set()
        self._scanned = False
        self.partitions_visited = 0

    def follow(self, state: MetadataState, events: Iterable[object], reset: bool) -> None:
        if reset or not self._scanned:
            self._scan(state)
            return
        for event in events:
            if isinstance(event, PartitionChanged):
                self._note(event.topic, event.record)
            elif isinstance(event, TopicCreated):
                topic = state.topics.get(event.name)
                for p in topic.partitions if topic is not None else ():
                    self._note(event.name, p)

    def _scan(self, state: MetadataState) -> None:
        self._misplaced.clear()
        for topic in state.topics.values():
            for p in topic.partitions:
                self._note(topic.name, p)
        self._scanned = True

    def _note(self, topic: str, p: PartitionRecord) -> None:
        self.partitions_visited += 1
        if p.leader != p.replicas[0]:
            self._misplaced.add((topic, p.partition))
        else:
            self._misplaced.discard((topic, p.partition))

    def __len__(self) -> int:
        return len(self._misplaced)

    def elections(
        self, state: MetadataState, new_command_id: Callable[[], str] = no_command_id
    ) -> list[ElectLeader]:
        if not self._scanned:
            self._scan(state)
        out = []
        for key in sorted(self._misplaced):
            self.partitions_visited += 1
            topic = state.topics.get(key[0])
            if topic is None or key[1] >= len(topic.partitions):
                self._misplaced.discard(key)
                continue
            p = topic.partitions[key[1]]
            if p.leader == p.replicas[0]:
                self._misplaced.discard(key)
            elif _preferred_can_lead(state, p):
                out.append(_elect_preferred(key[0], p, new_command_id))
        return out


def _preferred_can_lead(state: MetadataState, p: PartitionRecord) -> bool:
    preferred = p.replicas[0]
    return p.leader != preferred and preferred in p.isr and not state.brokers[preferred].fenced


def _elect_preferred(
    topic: str, p: PartitionRecord, new_command_id: Callable[[], str]
) -> ElectLeader:
    return ElectLeader(
        topic,
        p.partition,
        p.replicas[0],
        expected_leader_epoch=p.leader_epoch,
        command_id=new_command_id(),
    )


def plan_create_topic(
    state: MetadataState,
    name: str,
    topic_id: str,
    partitions: int,
    replication_factor: int,
    config: TopicConfig,
    command_id: str = "",
    max_partitions_per_broker: int | None = None,
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

    With `max_partitions_per_broker`, a topic that would bring any broker past that many
    partition replicas (those it holds in `state` plus the new ones) is rejected with
    INVALID_REQUEST, naming the broker and what would fit: before anything is committed.
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
    if max_partitions_per_broker is not None:
        over = _over_partition_budget(state, assignment, max_partitions_per_broker)
        if over is not None:
            return Rejected(ErrorCode.INVALID_REQUEST, f"topic {name!r}: {over}")
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


def partition_replicas_per_broker(state: MetadataState) -> Counter[int]:
    """How many partition replicas each broker holds, from the metadata alone."""
    return Counter(b for t in state.topics.values() for p in t.partitions for b in p.replicas)


def _over_partition_budget(
    state: MetadataState, assignment: tuple[tuple[int, ...], ...], limit: int
) -> str | None:
    """Why `assignment` would bring a broker past `limit` replicas, or None if it fits."""
    held = partition_replicas_per_broker(state)
    new = Counter(b for replicas in assignment for b in replicas)
    over = sorted(b for b in new if held[b] + new[b] > limit)
    if not over:
        return None
    # Placement spreads replicas evenly, so the fullest broker decides how many fit.
    room = min(limit - held[b] for b in state.brokers if not state.brokers[b].fenced)
    per_partition = max(new.values()) / len(assignment)
    fits = max(0, int(room / per_partition)) if room > 0 else 0
    b = over[0]
    return (
        f"{len(assignment)} partitions x {len(assignment[0])} replicas would put "
        f"{held[b] + new[b]} partition replicas on broker {b} (it holds {held[b]}), over "
        f"max_partitions_per_broker = {limit}; about {fits} partitions would fit: "
        "ask for fewer partitions or replicas, delete topics, or add brokers"
    )
