"""Replication on three real broker processes: ISR shrink and expand, failover under acks=all,
divergent tails truncated by leader epoch, NOT_ENOUGH_REPLICAS, idempotent retries across a
leader change."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Any

from raftka.api.launcher import Cluster, Response, wait_for

BROKERS = (1, 2, 3)


def partitions(cluster: Cluster, broker_id: int, topic: str) -> list[dict[str, Any]]:
    return cluster.get(broker_id, f"/v1/topics/{topic}")["partitions"]  # type: ignore[no-any-return]


def partition(cluster: Cluster, broker_id: int, topic: str, index: int = 0) -> dict[str, Any]:
    return partitions(cluster, broker_id, topic)[index]


def create(cluster: Cluster, via: int, name: str, **config: Any) -> dict[str, Any]:
    resp = cluster.request(
        via,
        "POST",
        "/v1/topics",
        {"name": name, "partitions": 1, "replication_factor": 3, "config": config},
    )
    assert resp.status == 201, resp.body
    return resp.body["partitions"][0]  # type: ignore[no-any-return]


def post(cluster: Cluster, via: int, path: str, body: Any) -> Response:
    return cluster.request(via, "POST", path, body)


def not_controller(cluster: Cluster, exclude: int | None = None) -> int:
    controller = cluster.cluster_view(BROKERS[0])["controller"]
    return next(b for b in BROKERS if b not in (controller, exclude))


def test_a_paused_follower_leaves_the_isr_and_comes_back_after_catching_up(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3, replica_lag_time_max_ms=1000)
    cluster.start_all()
    cluster.wait_ready()
    leader = create(cluster, 1, "lag")["leader"]
    follower = not_controller(cluster, exclude=leader)
    cluster.produce(leader, "lag", 0, ["before"])

    cluster.pause(follower)
    try:
        wait_for(
            lambda: follower not in partition(cluster, leader, "lag")["isr"],
            "the paused follower to leave the ISR",
        )
        # Writes go on without it (min_insync_replicas=1) while it is frozen.
        cluster.produce(leader, "lag", 0, ["while paused 1", "while paused 2"])
    finally:
        cluster.resume(follower)
    wait_for(
        lambda: follower in partition(cluster, leader, "lag")["isr"],
        "the follower to rejoin the ISR once caught up",
    )
    cluster.produce(leader, "lag", 0, ["after"])
    assert cluster.read_all(follower, "lag", 0) == [
        "before",
        "while paused 1",
        "while paused 2",
        "after",
    ]


class AcksAllWriter(threading.Thread):
    """Produces numbered values with acks=all through the brokers in turn (retrying 503s
    and broken connections as a client would), recording the acknowledged ones."""

    def __init__(self, cluster: Cluster, topic: str, via: list[int]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.topic = topic
        self.via = via
        self.acked: dict[int, int] = {}  # value -> offset
        self.stop = threading.Event()

    def run(self) -> None:
        value = 0
        turn = 0
        while not self.stop.is_set():
            broker = self.via[turn % len(self.via)]
            turn += 1
            try:
                resp = post(
                    self.cluster,
                    broker,
                    f"/v1/topics/{self.topic}/partitions/0/records?acks=all",
                    {"records": [{"value": value}]},
                )
            except OSError:
                continue
            if resp.status == 200:
                self.acked[value] = resp.body["offsets"][0]["offset"]
                value += 1


def test_every_acks_all_record_survives_the_leaders_kill(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    leader = create(cluster, 1, "safe", min_insync_replicas=2)["leader"]
    survivors = [b for b in BROKERS if b != leader]
    writer = AcksAllWriter(cluster, "safe", [leader, *survivors])
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 20, "acknowledged writes before the kill")
        cluster.kill(leader)
        writer.via = survivors
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= before + 20, "acknowledged writes after the kill")
    finally:
        writer.stop.set()
        writer.join(30)
    new_leader = partition(cluster, survivors[0], "safe")["leader"]
    assert new_leader in survivors
    values = cluster.read_all(new_leader, "safe", 0)
    for value, offset in writer.acked.items():
        assert values[offset] == value, f"acknowledged {value} at {offset}, found {values[offset]}"
    # Offsets are dense and each value appears once (a retry after a lost answer may
    # repeat an unacknowledged one; every acknowledged one is where it was acknowledged).
    assert len(values) >= len(writer.acked)


def test_a_returning_ex_leader_truncates_the_tail_its_followers_never_got(
    cluster_factory: Callable[..., Cluster],
) -> None:
    # A long lease: the leader must keep taking acks=1 writes while its followers are paused.
    cluster = cluster_factory(voters=3, broker_session_timeout_ms=10_000)
    cluster.start_all()
    controller = cluster.wait_ready()
    cluster.create_topic(1, "diverge", partitions=3, rf=3)
    # Leaders are spread over the brokers: take a partition the controller does not lead,
    # so pausing its followers does not also stop the leader's own metadata quorum work.
    p = next(x for x in partitions(cluster, 1, "diverge") if x["leader"] != controller)
    index, leader = p["partition"], p["leader"]
    followers = [b for b in BROKERS if b != leader]
    path = f"/v1/topics/diverge/partitions/{index}/records"
    assert cluster.produce(leader, "diverge", index, ["committed"]) == [0]

    for f in followers:
        cluster.pause(f)
    try:
        # A fetch the followers sent before the pause may still be parked at the leader: an
        # append would answer it into their sockets, and they would have the tail after
        # all. Parked fetches are answered within replica_fetch_wait_max_ms; none come next.
        wait_for(no_fetch_waiting(cluster, leader), "the followers' last fetches answered")
        # acks=1 on the leader alone, within its lease: lost by design once it dies.
        tail = post(
            cluster,
            leader,
            path + "?acks=1",
            {"records": [{"value": "never replicated 1"}, {"value": "never replicated 2"}]},
        )
        cluster.kill(leader)
    finally:
        for f in followers:
            cluster.resume(f)
    assert tail.status == 200, tail.body

    wait_for(
        lambda: partition(cluster, followers[0], "diverge", index)["leader"] in followers,
        "a follower to take over",
    )
    assert cluster.produce(followers[0], "diverge", index, ["new leader's"]) == [1]

    cluster.start(leader)
    cluster.wait_ready()
    wait_for(
        lambda: partition(cluster, followers[0], "diverge", index)["leader"] == leader,
        "the ex-leader to rejoin the ISR and lead again (preferred leader)",
    )
    assert cluster.read_all(leader, "diverge", index) == ["committed", "new leader's"]
    assert "divergent from the leader's log" in cluster.log_tail(leader, 400)


def fetches_waiting(cluster: Cluster, broker_id: int) -> float:
    address = cluster.brokers[broker_id].address
    conn = http.client.HTTPConnection(address.http_host, address.http_port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("raftka_replica_fetches_waiting ")
    )


def no_fetch_waiting(cluster: Cluster, broker_id: int) -> Callable[[], bool]:
    """A condition: the broker held no follower fetch on two polls in a row (a fetch already
    on its way when we first looked would be parked by the second)."""
    zeros = 0

    def condition() -> bool:
        nonlocal zeros
        zeros = zeros + 1 if fetches_waiting(cluster, broker_id) == 0 else 0
        return zeros >= 2

    return condition


def test_acks_all_is_refused_with_too_few_in_sync_replicas_also_when_forwarded(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    controller = cluster.wait_ready()
    leader = create(cluster, 1, "strict", min_insync_replicas=3)["leader"]
    victim = next(b for b in BROKERS if b not in (leader, controller))
    other = next(b for b in BROKERS if b not in (leader, victim))
    assert cluster.produce(leader, "strict", 0, ["all three"]) == [0]

    cluster.kill(victim)
    wait_for(
        lambda: victim not in partition(cluster, leader, "strict")["isr"],
        "the dead follower to leave the ISR",
    )
    for via in {leader, other}:
        refused = post(
            cluster,
            via,
            "/v1/topics/strict/partitions/0/records?acks=all",
            {"records": [{"value": 1}]},
        )
        assert refused.status == 503, refused.body
        assert refused.body["error"]["code"] == "NOT_ENOUGH_REPLICAS"
    assert cluster.produce(leader, "strict", 0, ["acks=1 still works"], acks="1") == [1]


def test_an_idempotent_retry_across_a_leader_change_is_not_written_twice(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    leader = create(cluster, 1, "once", min_insync_replicas=2)["leader"]
    survivors = [b for b in BROKERS if b != leader]
    producer = post(cluster, survivors[0], "/v1/producers", None).body
    batch = {
        "records": [{"value": "a"}, {"value": "b"}],
        "producer": {"id": producer["id"], "epoch": producer["epoch"], "sequence": 0},
    }
    path = "/v1/topics/once/partitions/0/records?acks=all"
    first = post(cluster, leader, path, batch)
    assert first.status == 200, first.body

    cluster.kill(leader)

    # The producer never saw the answer (say) and retries through another broker.
    def retried() -> Response | None:
        resp = post(cluster, survivors[0], path, batch)
        return resp if resp.status == 200 else None

    retry = wait_for(retried, "the retry to be answered by the new leader")
    assert retry.body == first.body
    nxt = {**batch, "producer": {**batch["producer"], "sequence": 2}}
    assert post(cluster, survivors[1], path, nxt).body["offsets"][0]["offset"] == 2
    gap = {**batch, "producer": {**batch["producer"], "sequence": 9}}
    refused = post(cluster, survivors[0], path, gap)
    assert refused.status == 409 and refused.body["error"]["code"] == "OUT_OF_ORDER_SEQUENCE"
    assert cluster.read_all(survivors[0], "once", 0) == ["a", "b", "a", "b"]


def test_a_restarted_leaders_partition_keeps_its_records_and_offsets(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3)
    cluster.start_all()
    cluster.wait_ready()
    leader = create(cluster, 1, "kept")["leader"]
    other = next(b for b in BROKERS if b != leader)
    assert cluster.produce(other, "kept", 0, ["a", "b", "c"]) == [0, 1, 2]
    cluster.kill(leader)
    cluster.start(leader)
    cluster.wait_ready()
    wait_for(
        lambda: partition(cluster, other, "kept")["leader"] == leader,
        "the restarted broker to lead its partition again once in sync",
    )
    # A new leader's high watermark catches up once its followers fetch (docs/guarantees.md).
    wait_for(
        lambda: cluster.read_all(other, "kept", 0) == ["a", "b", "c"],
        "the records readable at the restarted leader",
    )
    assert cluster.produce(other, "kept", 0, ["d"]) == [3]
