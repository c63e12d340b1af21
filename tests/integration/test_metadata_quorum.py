"""Three (or more) real brokers agreeing through the Raft metadata log."""

from collections.abc import Callable
from typing import Any

from raftka.api.launcher import Cluster, wait_for


def _partitions(cluster: Cluster, broker_id: int, topic: str) -> list[dict[str, Any]]:
    return cluster.get(broker_id, f"/v1/topics/{topic}")["partitions"]  # type: ignore[no-any-return]


def _alive(cluster: Cluster, broker_id: int) -> set[int]:
    return {b["id"] for b in cluster.cluster_view(broker_id)["brokers"] if b["alive"]}


def test_three_brokers_elect_one_controller_that_all_agree_on(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    controller = cluster.wait_ready()
    for broker_id in (1, 2, 3):
        view = cluster.cluster_view(broker_id)
        assert view["controller"] == controller
        assert [b["id"] for b in view["brokers"]] == [1, 2, 3]
        assert all(b["raft_voter"] for b in view["brokers"])


def test_killing_the_controller_elects_another_fences_it_and_moves_its_leaderships(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    controller = cluster.wait_ready()
    cluster.create_topic(controller, "t", partitions=6, rf=3)
    before = _partitions(cluster, controller, "t")
    led_by_victim = [p for p in before if p["leader"] == controller]
    assert led_by_victim, "placement spreads leaders over every broker"

    cluster.kill(controller)
    survivors = [b for b in (1, 2, 3) if b != controller]

    new_controller = wait_for(
        lambda: (
            (c := cluster.cluster_view(survivors[0])["controller"]) not in (None, controller) and c
        ),
        "a new controller",
    )
    assert new_controller in survivors
    wait_for(lambda: controller not in _alive(cluster, survivors[0]), "the dead broker fenced")
    after = {p["partition"]: p for p in _partitions(cluster, survivors[0], "t")}
    for p in led_by_victim:
        moved = after[p["partition"]]
        assert moved["leader"] in survivors
        assert moved["leader_epoch"] > p["leader_epoch"]
        assert controller not in moved["isr"]
    # Every survivor serves the re-led partitions (forwarding to the new leaders).
    for p in led_by_victim:
        assert cluster.produce(survivors[1], "t", p["partition"], ["x"]) == [0]


def test_a_restarted_broker_is_unfenced_and_leads_again_where_it_was_the_last_replica(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    # RF=1 partitions on every broker: fencing keeps the last ISR member, leaderless.
    cluster.create_topic(1, "solo", partitions=3, rf=1)
    victim = 3 if cluster.cluster_view(1)["controller"] != 3 else 2
    mine = [p["partition"] for p in _partitions(cluster, 1, "solo") if p["leader"] == victim]
    assert mine
    cluster.produce(1, "solo", mine[0], ["kept"])

    cluster.kill(victim)
    wait_for(lambda: victim not in _alive(cluster, 1), "the broker fenced")
    fenced = {p["partition"]: p for p in _partitions(cluster, 1, "solo")}
    for partition in mine:
        assert fenced[partition]["leader"] is None
        assert fenced[partition]["isr"] == [victim]
    reply = cluster.request(1, "GET", f"/v1/topics/solo/partitions/{mine[0]}/records?offset=0")
    assert reply.status == 503
    assert reply.body["error"]["code"] == "LEADER_NOT_AVAILABLE"

    cluster.start(victim)
    cluster.wait_ready()
    wait_for(
        lambda: all(
            p["leader"] == victim for p in _partitions(cluster, 1, "solo") if p["partition"] in mine
        ),
        "leadership back on the restarted broker",
    )
    assert cluster.read_all(1, "solo", mine[0]) == ["kept"]


def test_a_full_cluster_restart_keeps_every_topic_and_record(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "a", partitions=2, rf=1)
    cluster.create_topic(2, "b", partitions=3, rf=3)
    for p in range(2):
        cluster.produce(3, "a", p, [f"a{p}"])
    for broker_id in (1, 2, 3):
        assert cluster.stop(broker_id) == 0

    cluster.start_all()
    cluster.wait_ready()
    for broker_id in (1, 2, 3):
        assert cluster.get(broker_id, "/v1/topics")["topics"] == ["a", "b"]
    for p in range(2):
        wait_for(lambda p=p: cluster.read_all(1, "a", p) == [f"a{p}"], f"a-{p} readable")
    assert len(_partitions(cluster, 2, "b")) == 3


def test_a_non_voting_broker_registers_and_sees_every_change(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3, observers=1)
    cluster.start_all()
    cluster.wait_ready()
    view = cluster.cluster_view(4)
    assert {b["id"]: b["raft_voter"] for b in view["brokers"]} == {
        1: True,
        2: True,
        3: True,
        4: False,
    }
    cluster.create_topic(1, "seen", partitions=4, rf=2)
    wait_for(lambda: "seen" in cluster.get(4, "/v1/topics")["topics"], "the observer sees it")
    # The observer can lead partitions and serves any partition through forwarding.
    for p in range(4):
        assert cluster.produce(4, "seen", p, [p]) == [0]
        assert cluster.read_all(4, "seen", p) == [p]
    resp = cluster.request(4, "DELETE", "/v1/topics/seen")
    assert resp.status == 204
    wait_for(lambda: cluster.get(1, "/v1/topics")["topics"] == [], "the delete seen by voters")


def test_the_minority_side_refuses_metadata_writes_but_still_serves_reads(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "before", partitions=1, rf=1)
    cluster.kill(2)
    cluster.kill(3)
    resp = cluster.request(1, "POST", "/v1/topics", {"name": "after", "partitions": 1})
    assert resp.status == 503
    assert resp.body["error"]["code"] == "NO_CONTROLLER"
    assert cluster.get(1, "/v1/topics")["topics"] == ["before"]


def test_a_leader_cut_off_from_the_quorum_stops_taking_writes_until_it_reconnects(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "lease", partitions=3, rf=1)
    mine = next(p["partition"] for p in _partitions(cluster, 1, "lease") if p["leader"] == 1)
    assert cluster.produce(1, "lease", mine, ["before"]) == [0]

    cluster.pause(2)
    cluster.pause(3)

    def refused() -> bool:
        resp = cluster.request(
            1, "POST", f"/v1/topics/lease/partitions/{mine}/records", {"records": [{"value": 1}]}
        )
        return resp.status == 503 and resp.body["error"]["code"] == "LEADER_NOT_AVAILABLE"

    wait_for(refused, "broker 1 to give up its lease")
    cluster.resume(2)
    cluster.resume(3)
    cluster.wait_ready()
    offsets = cluster.produce(1, "lease", mine, ["after"])
    assert cluster.read_all(1, "lease", mine)[-1] == "after"
    assert offsets[0] >= 1


def test_a_topic_produce_refused_for_one_partition_writes_none_of_them(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    controller = cluster.wait_ready()
    victim = next(b for b in (1, 2, 3) if b not in (1, controller))
    cluster.create_topic(1, "all-or-none", partitions=3, rf=1)
    leaders = {p["partition"]: p["leader"] for p in _partitions(cluster, 1, "all-or-none")}
    dead_partition = next(p for p, b in leaders.items() if b == victim)
    live_partition = next(p for p, b in leaders.items() if b == 1)
    cluster.produce(1, "all-or-none", dead_partition, ["written before"])
    cluster.kill(victim)
    wait_for(
        lambda: _partitions(cluster, 1, "all-or-none")[dead_partition]["leader"] is None,
        "the dead broker's partition to go leaderless",
    )
    resp = cluster.request(
        1,
        "POST",
        "/v1/topics/all-or-none/records?acks=1",
        {
            "records": [
                {"value": "live", "partition": live_partition},
                {"value": "dead", "partition": dead_partition},
            ]
        },
    )
    assert resp.status == 503
    assert resp.body["error"]["code"] == "LEADER_NOT_AVAILABLE"
    assert cluster.read_all(1, "all-or-none", live_partition) == []


def test_a_long_poll_through_another_broker_outlasts_the_forwarding_timeout(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1, observers=1, request_timeout_ms=1000)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "poll", partitions=2, rf=1)
    led_by_1 = next(p["partition"] for p in _partitions(cluster, 1, "poll") if p["leader"] == 1)
    answer = cluster.get(
        2, f"/v1/topics/poll/partitions/{led_by_1}/records?offset=0&max_wait_ms=2500"
    )
    assert answer["records"] == []
    assert answer["high_watermark"] == 0
