"""The leader dies while librdkafka produces with acks=all: librdkafka's own retries and
metadata refreshes find the new leader, and every record it reported delivered is
there afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from raftka.api.launcher import make_cluster, wait_for
from tests.kafka.conftest import CLIENT_TIMEOUT_S, bootstrap

pytestmark = pytest.mark.integration

RECORDS = 3000
KILL_AFTER = 500


def test_every_delivered_record_survives_the_leader_being_killed(tmp_path: Path):
    cluster = make_cluster(tmp_path, 3, kafka=True)
    cluster.start_all()
    try:
        cluster.wait_ready()
        resp = cluster.request(
            1,
            "POST",
            "/v1/topics",
            {
                "name": "fo",
                "partitions": 1,
                "replication_factor": 3,
                "config": {"min_insync_replicas": 2},
            },
        )
        assert resp.status == 201, resp.body
        leader = wait_for(
            lambda: cluster.get(1, "/v1/topics/fo")["partitions"][0]["leader"], "a leader"
        )
        producer = Producer(
            {
                "bootstrap.servers": bootstrap(cluster),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": int(CLIENT_TIMEOUT_S * 1000),
            }
        )
        delivered: list[bytes] = []

        def report(err, msg):  # type: ignore[no-untyped-def]
            if err is None:
                delivered.append(msg.value())

        for i in range(RECORDS):
            producer.produce("fo", value=b"%d" % i, partition=0, on_delivery=report)
            producer.poll(0)
            if i == KILL_AFTER:
                wait_for(lambda: producer.flush(1) == 0 or None, "the first records delivered")
                cluster.kill(leader)
        assert producer.flush(CLIENT_TIMEOUT_S) == 0
        assert len(delivered) == RECORDS  # librdkafka retried through the failover
        survivor = next(b for b in (1, 2, 3) if b != leader)

        def all_readable() -> list[bytes] | None:
            view = cluster.get(survivor, "/v1/topics/fo")["partitions"][0]
            if view["leader"] in (None, leader):
                return None
            values = cluster.read_all(survivor, "fo", 0)
            return [str(v).encode() for v in values]

        consumed = wait_for(all_readable, "fo readable at its new leader")
        missing = set(delivered) - set(consumed)
        assert not missing, f"{len(missing)} delivered records lost, e.g. {sorted(missing)[:5]}"
        assert len(consumed) == len(set(consumed)), "idempotence: no retry written twice"
    finally:
        cluster.close()
