"""Consumer groups on three real broker processes: members split partitions, a member
that dies is replaced and its partitions continue from the committed offsets, and the
group survives its coordinator's broker being killed.

Members here are driven from the test over plain HTTP, one request at a time, so a
"killed" member is one that simply stops talking (as a crashed process would).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raftka.api.launcher import Cluster, wait_for

BROKERS = (1, 2, 3)
PARTITIONS = 6


@dataclass
class Member:
    cluster: Cluster
    via: int  # the broker this member talks to
    member_id: str = ""
    generation: int = 0
    assignment: set[int] = field(default_factory=set)
    rebalance: bool = True

    def join(self, session_timeout_ms: int = 10_000) -> None:
        body = {"topics": ["t"], "session_timeout_ms": session_timeout_ms}
        answer = wait_for(lambda: self._ok("POST", "/v1/groups/g/members", body), "a join")
        self.member_id, self.generation = answer["member_id"], answer["generation"]
        self.assignment = set(answer["assignment"].get("t", []))

    def _ok(self, method: str, path: str, body: Any = None) -> Any:
        """The answer, or None on a retriable 503 (a coordinator is moving)."""
        resp = self.cluster.request(self.via, method, path, body)
        if resp.status == 503:
            return None
        assert resp.status in (200, 204), f"{method} {path}: {resp.status} {resp.body}"
        return resp.body if resp.body is not None else True

    def heartbeat(self) -> None:
        path = f"/v1/groups/g/members/{self.member_id}/heartbeat"
        answer = wait_for(
            lambda: self._ok("POST", path, {"generation": self.generation}), "a heartbeat"
        )
        self.generation = answer["generation"]
        self.assignment = set(answer["assignment"].get("t", []))
        self.rebalance = answer["rebalance"]

    def poll(self) -> list[dict[str, Any]]:
        path = f"/v1/groups/g/members/{self.member_id}/records?max_records=1000"
        records: list[dict[str, Any]] = wait_for(lambda: self._ok("GET", path), "a poll")["records"]
        return records

    def commit(self, offsets: dict[int, int]) -> None:
        body = {
            "member_id": self.member_id,
            "generation": self.generation,
            "offsets": [{"topic": "t", "partition": p, "offset": o} for p, o in offsets.items()],
        }
        wait_for(lambda: self._ok("POST", "/v1/groups/g/offsets", body), "a commit")


def settle(members: list[Member]) -> None:
    def settled() -> bool:
        for m in members:
            m.heartbeat()
        return not any(m.rebalance for m in members)

    wait_for(settled, "the group to settle")


def start(cluster_factory: Callable[..., Cluster]) -> Cluster:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "t", PARTITIONS, 3)
    return cluster


def produce_round(cluster: Cluster, round_: int, via: tuple[int, ...] = BROKERS) -> None:
    for p in range(PARTITIONS):
        cluster.produce(via[p % len(via)], "t", p, [f"{round_}-{p}-{i}" for i in range(5)])


def test_three_members_split_six_partitions_two_each(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = start(cluster_factory)
    members = [Member(cluster, via=b) for b in BROKERS]
    for m in members:
        m.join()
    settle(members)
    assert sorted(len(m.assignment) for m in members) == [2, 2, 2]
    assert set().union(*(m.assignment for m in members)) == set(range(PARTITIONS))


def test_a_dead_member_is_replaced_and_its_partitions_continue_from_the_committed_offsets(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = start(cluster_factory)
    produce_round(cluster, 0)
    a, b, dead = Member(cluster, 1), Member(cluster, 2), Member(cluster, 3)
    a.join()
    b.join()
    dead.join(session_timeout_ms=2000)
    settle([a, b, dead])
    # The doomed member reads its partitions, commits only the first 2 records of each.
    read: list[dict[str, Any]] = []
    while len(read) < 5 * len(dead.assignment):
        read += dead.poll()
    assert {r["partition"] for r in read} == dead.assignment
    dead.commit(dict.fromkeys(dead.assignment, 2))
    orphans = set(dead.assignment)

    # It dies: the survivors get its partitions once its session times out.
    def orphans_taken() -> bool:
        a.heartbeat()
        b.heartbeat()
        return orphans <= a.assignment | b.assignment and not (a.rebalance or b.rebalance)

    wait_for(orphans_taken, "the dead member's partitions to move")
    firsts: dict[int, int] = {}
    for m in (a, b):
        for r in m.poll():
            firsts.setdefault(r["partition"], r["offset"])
    assert {p: firsts[p] for p in orphans} == dict.fromkeys(orphans, 2)
    described = cluster.get(1, "/v1/groups/g")
    assert sorted(x["member_id"] for x in described["members"]) == sorted(
        [a.member_id, b.member_id]
    )


def test_the_group_carries_on_when_its_coordinators_broker_is_killed(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = start(cluster_factory)
    produce_round(cluster, 0)
    coordinator = cluster.get(1, "/v1/groups/g")["coordinator"]
    survivors = [b for b in BROKERS if b != coordinator]
    members = [Member(cluster, survivors[i % 2]) for i in range(3)]
    for m in members:
        m.join()
    settle(members)
    for m in members:
        records = m.poll()
        m.commit({p: 3 for p in m.assignment})
        assert {r["partition"] for r in records} <= m.assignment
    before = {m.member_id: set(m.assignment) for m in members}

    cluster.kill(coordinator)

    def new_coordinator() -> int | None:
        resp = cluster.request(survivors[0], "GET", "/v1/groups/g")
        if resp.status != 200:  # 503 while the group moves
            return None
        found: int = resp.body["coordinator"]
        return found if found != coordinator else None

    wait_for(new_coordinator, "another broker to take the group over")
    settle(members)
    # Nobody was lost: the same members, the same partitions, the committed offsets kept.
    assert {m.member_id: set(m.assignment) for m in members} == before
    offsets = cluster.get(survivors[0], "/v1/groups/g/offsets")["offsets"]
    assert {(o["partition"], o["offset"]) for o in offsets} == {(p, 3) for p in range(PARTITIONS)}
    produce_round(cluster, 1, via=tuple(survivors))
    seen: set[tuple[int, int]] = set()

    def consumed_new_round() -> bool:
        for m in members:
            seen.update((r["partition"], r["offset"]) for r in m.poll())
        return {(p, o) for p in range(PARTITIONS) for o in range(3, 10)} <= seen

    wait_for(consumed_new_round, "the members to read on after the takeover")


def test_a_coordinator_that_comes_back_serves_from_the_commits_made_while_it_was_away(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "t", 1, 3)
    coordinator = cluster.get(1, "/v1/groups/g")["coordinator"]
    other = next(b for b in BROKERS if b != coordinator)
    cluster.produce(other, "t", 0, list(range(10)))
    member = Member(cluster, via=other)
    member.join(session_timeout_ms=30_000)
    settle([member])
    # At the first coordinator: read part of the partition, commit nothing.
    path = f"/v1/groups/g/members/{member.member_id}/records?max_records=3"
    assert [r["offset"] for r in member._ok("GET", path)["records"]] == [0, 1, 2]

    cluster.pause(coordinator)
    try:

        def moved() -> bool:
            resp = cluster.request(other, "GET", "/v1/groups/g")
            return resp.status == 200 and resp.body["coordinator"] != coordinator

        wait_for(moved, "another broker to take the group over")
        # At the interim coordinator: read everything from the start, commit the end.
        read: list[int] = []
        while len(read) < 10:
            read += [r["offset"] for r in member.poll()]
        member.heartbeat()
        member.commit({0: 10})
    finally:
        cluster.resume(coordinator)

    def back() -> bool:
        resp = cluster.request(other, "GET", "/v1/groups/g")
        return resp.status == 200 and resp.body["coordinator"] == coordinator

    wait_for(back, "the first coordinator to take its group back")
    cluster.produce(other, "t", 0, list(range(10, 15)))
    # Its old position (3) must not come back: it serves from the commit made meanwhile.
    first: list[int] = []
    while not first:
        first = [r["offset"] for r in member.poll()]
    assert first[0] == 10
