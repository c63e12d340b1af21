"""raftka.client against real broker processes: what a Python user of the client relies on."""

import asyncio
import base64
import http.client
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from raftka.api.launcher import Cluster, wait_for
from raftka.client import (
    Admin,
    ConnectionFailed,
    Consumer,
    Producer,
    Record,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
    aio,
)

FUTURE_TIMEOUT_S = 60


def _started(cluster_factory: Callable[..., Cluster], voters: int = 1) -> tuple[Cluster, str]:
    cluster = cluster_factory(voters=voters)
    cluster.start_all()
    cluster.wait_ready()
    return cluster, cluster.brokers[1].url


def _read_all(url: str, topic: str, partitions: int, count: int) -> list[Record]:
    """Reads `count` records from the topic's partitions from the start (assign mode)."""
    records: list[Record] = []
    with Consumer(url, assign=[(topic, p, 0) for p in range(partitions)]) as consumer:
        wait_for(lambda: records.extend(consumer.poll(0.5)) or len(records) >= count, "records")
        assert not consumer.poll(0.3), "more records than were produced"
    return records


def test_sync_and_asyncio_producers_round_trip_through_an_assigned_consumer(
    cluster_factory: Callable[..., Cluster],
) -> None:
    _, url = _started(cluster_factory)
    with Admin(url) as admin:
        admin.create_topic("rt", partitions=2)
    with Producer(url) as producer:
        sent = [
            producer.send("rt", {"n": 1}, key="a", headers={"src": "sync"}),
            producer.send("rt", b"\x00raw", key=b"\x01", partition=1),
            producer.send("rt", "plain", partition=0, timestamp=1234),
        ]
        producer.flush()
        placed = [f.result(FUTURE_TIMEOUT_S) for f in sent]

    async def produce_async() -> list[tuple[int, int | None]]:
        async with aio.Producer(url, linger_ms=1) as p:
            futures = [await p.send("rt", i, key="k") for i in range(3)]
            return [await f for f in futures]

    placed += asyncio.run(produce_async())
    by_place = {(r.partition, r.offset): r for r in _read_all(url, "rt", 2, 6)}
    assert set(by_place) == set(placed)
    first, raw, plain = (by_place[p] for p in placed[:3])
    assert (first.key, first.value, first.headers) == ("a", {"n": 1}, {"src": "sync"})
    assert (raw.key, raw.value, raw.partition) == (b"\x01", b"\x00raw", 1)
    assert (plain.value, plain.timestamp, plain.partition) == ("plain", 1234, 0)
    assert [by_place[p].value for p in placed[3:]] == [0, 1, 2]
    assert len({p for p, _ in placed[3:]}) == 1  # one key, one partition


def test_asyncio_consumer_reads_from_latest_and_iterates(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster, url = _started(cluster_factory)
    cluster.create_topic(1, "it", 1, 1)
    cluster.produce(1, "it", 0, ["old"])

    async def go() -> list[Any]:
        async with aio.Consumer(url, assign=[("it", 0, "latest")]) as consumer:
            assert await consumer.poll(0.2) == []
            async with aio.Producer(url) as producer:
                await producer.send_and_wait("it", "new")
            seen = []
            async for record in consumer:
                seen.append((record.offset, record.value))
                break
            assert consumer.position("it", 0) == 2
            return seen

    assert asyncio.run(go()) == [(1, "new")]


def test_keyed_records_land_on_the_partition_the_broker_would_choose(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster, url = _started(cluster_factory)
    partitions = 7
    cluster.create_topic(1, "keys", partitions, 1)
    keys: list[Any] = [f"user-{i}" for i in range(20)] + [1, 2.5, {"a": [1]}, b"\xfe\x00"]
    wire = [
        {"key_b64": base64.b64encode(k).decode()} if isinstance(k, bytes) else {"key": k}
        for k in keys
    ]
    resp = cluster.request(
        1, "POST", "/v1/topics/keys/records", {"records": [{**w, "value": 0} for w in wire]}
    )
    assert resp.status == 200, resp.body
    broker_choice = [o["partition"] for o in resp.body["offsets"]]
    with Producer(url) as producer:
        futures = [producer.send("keys", 1, key=k) for k in keys]
        client_choice = [f.result(FUTURE_TIMEOUT_S)[0] for f in futures]
    assert client_choice == broker_choice
    assert len(set(client_choice)) > 1


def test_many_sends_go_in_few_requests(cluster_factory: Callable[..., Cluster]) -> None:
    cluster, url = _started(cluster_factory)
    cluster.create_topic(1, "batched", 2, 1)
    before = _metric(cluster, "raftka_produce_requests_total")
    with Producer(url, linger_ms=200, batch_records=500) as producer:
        futures = [producer.send("batched", i, partition=i % 2) for i in range(2000)]
        producer.flush()
        assert all(f.result(FUTURE_TIMEOUT_S) for f in futures)
        requests = producer.stats.requests
    assert _metric(cluster, "raftka_produce_requests_total") - before == requests
    assert requests <= 16, requests  # 2000 records, 500 per batch, 2 partitions: ~4-8


def _metric(cluster: Cluster, name: str) -> float:
    """A counter summed over every broker (raw text, not JSON: http_request is for JSON)."""
    total = 0.0
    for b in cluster.brokers.values():
        conn = http.client.HTTPConnection(b.address.http_host, b.address.http_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        total += sum(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
        )
    return total


def test_an_idempotent_producer_writes_each_record_once_across_a_leader_kill(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster, url = _started(cluster_factory, voters=3)
    with Admin(url) as admin:
        admin.create_topic(
            "once", partitions=2, replication_factor=3, config={"min_insync_replicas": 2}
        )
    total = 4000
    acked = threading.Semaphore(0)
    futures: list[Future[tuple[int, int | None]]] = []
    with Producer(url, idempotent=True, linger_ms=2, batch_records=50) as producer:

        def send_all() -> None:
            for i in range(total):
                future = producer.send("once", i)
                future.add_done_callback(lambda _: acked.release())
                futures.append(future)

        sender = threading.Thread(target=send_all)
        sender.start()
        for _ in range(total // 4):
            assert acked.acquire(timeout=FUTURE_TIMEOUT_S)
        leader = cluster.get(2, "/v1/topics/once")["partitions"][0]["leader"]
        cluster.kill(leader)
        sender.join(FUTURE_TIMEOUT_S)
        producer.flush()
        stats = producer.stats
    placed = [f.result(FUTURE_TIMEOUT_S) for f in futures]
    assert len(set(placed)) == total
    survivor = next(b for b in cluster.brokers.values() if b.running).url
    records = _read_all(survivor, "once", 2, total)
    counts = Counter(r.value for r in records)
    assert counts == Counter(range(total)), {v: n for v, n in counts.items() if n != 1}
    assert {(r.partition, r.offset) for r in records} == set(placed)
    assert stats.retries > 0, stats  # the kill happened while records were on their way


def test_a_producer_retries_while_a_partition_has_no_leader(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster, url = _started(cluster_factory, voters=3)
    with Admin(url) as admin:
        created = admin.create_topic("lna", partitions=3, replication_factor=1)
    # A partition led by a broker other than the bootstrap one, so metadata stays reachable.
    partition, leader = next(
        (p["partition"], p["leader"]) for p in created["partitions"] if p["leader"] != 1
    )
    cluster.kill(leader)
    wait_for(
        lambda: cluster.get(1, "/v1/topics/lna")["partitions"][partition]["leader"] is None,
        "the partition to lose its only replica's leadership",
    )
    with Producer(url, delivery_timeout_ms=60_000) as producer:
        future = producer.send("lna", "waited", partition=partition)
        wait_for(
            lambda: producer.stats.errors.get("LEADER_NOT_AVAILABLE", 0) >= 2,
            "the broker to answer LEADER_NOT_AVAILABLE",
        )
        cluster.start(leader)
        assert future.result(FUTURE_TIMEOUT_S) == (partition, 0)


def test_errors_raise_the_contract_classes(cluster_factory: Callable[..., Cluster]) -> None:
    cluster, url = _started(cluster_factory)
    admin = Admin(url)
    with pytest.raises(UnknownTopic) as caught:
        admin.describe_topic("missing")
    assert (caught.value.code, caught.value.status, caught.value.retriable) == (
        "UNKNOWN_TOPIC",
        404,
        False,
    )
    admin.create_topic("dup")
    with pytest.raises(TopicExists):
        admin.create_topic("dup")
    with Producer(url) as producer:
        with pytest.raises(UnknownTopic):
            producer.send("missing", 1).result(FUTURE_TIMEOUT_S)
        with pytest.raises(UnknownPartition):
            producer.send("dup", 1, partition=5).result(FUTURE_TIMEOUT_S)
    with Consumer(url, assign=[("missing", 0, 0)]) as consumer, pytest.raises(UnknownTopic):
        consumer.poll(10)
    admin.close()
    cluster.stop(1)
    with Admin(url, retry_for_s=0) as admin, pytest.raises(ConnectionFailed) as unreachable:
        admin.list_topics()
    assert unreachable.value.retriable
