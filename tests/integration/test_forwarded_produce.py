"""Produce through a broker that does not lead the partition: the body goes to the leader
as the client sent it, and the leader's answer (offsets, or the contract's error with its
status and Retry-After) comes back unchanged, the same as asking the leader directly."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

import orjson

from raftka.api.launcher import Cluster, wait_for

BROKERS = (1, 2, 3)
MAX_REQUEST_BYTES = 4096


def post(cluster: Cluster, broker_id: int, path: str, body: bytes) -> tuple[int, Any, str | None]:
    """(status, JSON answer, Retry-After) of one raw POST."""
    address = cluster.brokers[broker_id].address
    conn = http.client.HTTPConnection(address.http_host, address.http_port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read()), resp.getheader("Retry-After")
    finally:
        conn.close()


def records(*values: Any) -> bytes:
    return orjson.dumps({"records": [{"value": v} for v in values]})


def test_a_produce_through_a_non_leader_answers_as_the_leader_does(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=3, max_request_bytes=MAX_REQUEST_BYTES)
    cluster.start_all()
    controller = cluster.wait_ready()
    created = cluster.request(
        1,
        "POST",
        "/v1/topics",
        {"name": "fw", "partitions": 1, "replication_factor": 3},
    )
    assert created.status == 201, created.body
    leader = created.body["partitions"][0]["leader"]
    other = next(b for b in BROKERS if b != leader)
    path = "/v1/topics/fw/partitions/0/records?acks=all"

    # Offsets: the same sequence whichever broker is asked.
    assert post(cluster, other, path, records("a", "b"))[:2] == (
        200,
        {"offsets": [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}]},
    )
    assert post(cluster, leader, path, records("c"))[:2] == (
        200,
        {"offsets": [{"partition": 0, "offset": 2}]},
    )
    # Keyless records through the topic endpoint: one partition, passed through whole.
    status, answer, _ = post(cluster, other, "/v1/topics/fw/records?acks=1", records("d", "e"))
    assert (status, answer) == (
        200,
        {"offsets": [{"partition": 0, "offset": 3}, {"partition": 0, "offset": 4}]},
    )
    # The value is stored as sent (whitespace included), readable from any broker.
    raw = b'{"records": [{"key": "k", "value": {"x" : [1, 2]}}]}'
    assert post(cluster, other, path, raw)[0] == 200
    wait_for(lambda: len(cluster.read_all(other, "fw", 0)) == 6, "all six records readable")
    assert cluster.read_all(leader, "fw", 0) == ["a", "b", "c", "d", "e", {"x": [1, 2]}]

    # Errors: the same status, code and shape from the leader and through another broker.
    bad: list[tuple[bytes, int, str]] = [
        (b'{"records": []}', 400, "INVALID_REQUEST"),
        (b'{"records": [{"value": 1, "offset": 3}]}', 400, "INVALID_REQUEST"),
        (b'{"records": [{"value": 1e999}]}', 400, "INVALID_REQUEST"),
        (b'{"records": [', 400, "INVALID_REQUEST"),
        (records("x" * MAX_REQUEST_BYTES), 413, "REQUEST_TOO_LARGE"),
    ]
    for body, status, code in bad:
        for via in (leader, other):
            got_status, got, _ = post(cluster, via, path, body)
            assert (got_status, got["error"]["code"]) == (status, code), (via, got)
            assert isinstance(got["error"]["message"], str) and got["error"]["message"]

    # An idempotent producer's retry through either broker gets its original offsets; a gap
    # in its sequence is refused by the leader, and the refusal passes through.
    producer = cluster.request(other, "POST", "/v1/producers").body
    batch = {"records": [{"value": "p"}], "producer": {**producer, "sequence": 0}}
    first = post(cluster, other, path, orjson.dumps(batch))
    assert first[0] == 200
    assert post(cluster, leader, path, orjson.dumps(batch))[:2] == first[:2]
    gap = {"records": [{"value": "q"}], "producer": {**producer, "sequence": 5}}
    status, answer, _ = post(cluster, other, path, orjson.dumps(gap))
    assert (status, answer["error"]["code"]) == (409, "OUT_OF_ORDER_SEQUENCE")

    # A 503 from the leader keeps its Retry-After on the way back.
    cluster.request(
        1,
        "POST",
        "/v1/topics",
        {
            "name": "strict",
            "partitions": 1,
            "replication_factor": 3,
            "config": {"min_insync_replicas": 3},
        },
    )
    strict_leader = wait_for(
        lambda: cluster.get(1, "/v1/topics/strict")["partitions"][0]["leader"],
        "a leader for strict",
    )
    victim = next(b for b in BROKERS if b not in (strict_leader, controller))
    via = next(b for b in BROKERS if b not in (strict_leader, victim))
    cluster.kill(victim)
    wait_for(
        lambda: (
            victim not in cluster.get(strict_leader, "/v1/topics/strict")["partitions"][0]["isr"]
        ),
        "the dead follower to leave the ISR",
    )
    status, answer, retry_after = post(
        cluster, via, "/v1/topics/strict/partitions/0/records?acks=all", records(1)
    )
    assert (status, answer["error"]["code"]) == (503, "NOT_ENOUGH_REPLICAS")
    assert retry_after is not None and int(retry_after) >= 1
