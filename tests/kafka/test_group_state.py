"""The classic rebalance of one Kafka protocol group (api/kafka/group_state.py)."""

from __future__ import annotations

from raftka.api.kafka import errors
from raftka.api.kafka.group_state import INITIAL_REBALANCE_DELAY_S, GroupPhase, KafkaGroup

RANGE = (("range", b"meta"),)


def joined(group: KafkaGroup, member: str, now: float, protocols=RANGE) -> int:
    return group.join(member, "consumer", protocols, 10.0, 30.0, now)


def test_members_joining_together_share_the_first_generation_with_one_leader():
    g = KafkaGroup("g")
    assert joined(g, "a", 0.0) == errors.NONE
    assert joined(g, "b", 0.1) == errors.NONE
    assert not g.ready_to_complete(0.2)  # the initial delay gathers the first members
    answers = g.complete() if g.ready_to_complete(INITIAL_REBALANCE_DELAY_S) else {}
    assert {a.generation for a in answers.values()} == {1}
    assert answers["a"].members == (("a", b"meta"), ("b", b"meta"))  # the leader's answer
    assert answers["b"].members == ()
    assert g.phase is GroupPhase.COMPLETING_REBALANCE


def test_the_leaders_sync_hands_every_member_its_assignment():
    g = KafkaGroup("g")
    joined(g, "a", 0.0)
    g.complete()
    assert not g.sync("b", {})  # only the leader ends the rebalance
    assert g.sync("a", {"a": b"A"})
    assert g.phase is GroupPhase.STABLE and g.members["a"].assignment == b"A"


def test_a_new_member_sends_the_others_back_to_rejoin():
    g = KafkaGroup("g")
    joined(g, "a", 0.0)
    g.complete()
    g.sync("a", {"a": b"A"})
    joined(g, "b", 1.0)
    assert g.check_member("a", 1, 1.1) == errors.REBALANCE_IN_PROGRESS
    assert not g.ready_to_complete(1.2)  # a has not rejoined yet
    joined(g, "a", 1.3)
    assert g.ready_to_complete(1.3)
    assert g.complete()["a"].generation == 2


def test_a_member_that_does_not_rejoin_in_time_is_dropped():
    g = KafkaGroup("g")
    joined(g, "a", 0.0)
    g.complete()
    joined(g, "b", 1.0)
    assert g.ready_to_complete(1.0 + 30.0)
    assert set(g.complete()) == {"b"}


def test_an_expired_session_removes_the_member_and_rebalances():
    g = KafkaGroup("g")
    joined(g, "a", 0.0)
    joined(g, "b", 0.0)
    g.complete()
    g.sync("a", {})
    g.check_member("a", 1, 9.0)
    assert g.expire(10.5) == ["b"]
    assert g.phase is GroupPhase.PREPARING_REBALANCE


def test_stale_generations_and_strangers_are_refused():
    g = KafkaGroup("g")
    joined(g, "a", 0.0)
    g.complete()
    assert g.check_member("a", 0, 0.0) == errors.ILLEGAL_GENERATION
    assert g.check_member("x", 1, 0.0) == errors.UNKNOWN_MEMBER_ID
    assert g.leave("x", 0.0) == errors.UNKNOWN_MEMBER_ID


def test_members_without_a_common_protocol_are_refused():
    g = KafkaGroup("g")
    joined(g, "a", 0.0, (("range", b""),))
    joined(g, "b", 0.0, (("sticky", b""),))
    answers = g.complete()
    assert {a.error_code for a in answers.values()} == {errors.INCONSISTENT_GROUP_PROTOCOL}
