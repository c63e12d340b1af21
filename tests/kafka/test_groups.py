"""Kafka protocol consumer groups with librdkafka: two members split six partitions,
commit, and the committed offsets are the ones the HTTP API shows."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer

from raftka.api.launcher import Cluster
from tests.kafka.conftest import CLIENT_TIMEOUT_S, bootstrap

pytestmark = pytest.mark.integration

PARTITIONS = 6
PER_PARTITION = 10


def consumer(cluster: Cluster, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap(cluster),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )


def test_two_librdkafka_consumers_split_six_partitions_and_commit(kafka_cluster: Cluster):
    kafka_cluster.create_topic(1, "grp", PARTITIONS, 3)
    for p in range(PARTITIONS):
        kafka_cluster.produce(1, "grp", p, [f"p{p}-{i}" for i in range(PER_PARTITION)])
    members = [consumer(kafka_cluster, "kg"), consumer(kafka_cluster, "kg")]
    try:
        for c in members:
            c.subscribe(["grp"])
        seen: set[bytes] = set()
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while True:
            for c in members:
                msg = c.poll(0.2)
                if msg is not None:
                    assert msg.error() is None, msg.error()
                    seen.add(msg.value())
                    c.commit(msg, asynchronous=False)
            assignments = [{tp.partition for tp in c.assignment()} for c in members]
            if len(seen) == PARTITIONS * PER_PARTITION and all(len(a) == 3 for a in assignments):
                break
            assert time.monotonic() < deadline, f"{len(seen)} records, assignments {assignments}"
        assert assignments[0] | assignments[1] == set(range(PARTITIONS))
        assert seen == {
            f'"p{p}-{i}"'.encode() for p in range(PARTITIONS) for i in range(PER_PARTITION)
        }
        # One group id serves one protocol at a time: an HTTP member may not join.
        joined = kafka_cluster.request(1, "POST", "/v1/groups/kg/members", {"topics": ["grp"]})
        assert joined.status == 400, joined.body
        committed = kafka_cluster.get(1, "/v1/groups/kg/offsets")["offsets"]
        assert {(o["partition"], o["offset"]) for o in committed} == {
            (p, PER_PARTITION) for p in range(PARTITIONS)
        }
    finally:
        for c in members:
            c.close()
    # Once the Kafka members left, an HTTP member takes the group over from their commits.
    joined = kafka_cluster.request(1, "POST", "/v1/groups/kg/members", {"topics": ["grp"]})
    assert joined.status == 200, joined.body
    assert joined.body["assignment"] == {"grp": list(range(PARTITIONS))}
    member = joined.body["member_id"]
    records = kafka_cluster.get(1, f"/v1/groups/kg/members/{member}/records?max_wait_ms=0")
    assert records["records"] == []  # everything was committed over the Kafka protocol
