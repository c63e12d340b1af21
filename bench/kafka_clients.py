"""`python -m raftka.bench.kafka_clients`: produce and fetch throughput with
librdkafka (confluent-kafka, a test extra) over the Kafka protocol beside raftka's own
Python client over HTTP, on one fresh 3-broker cluster, in alternating rounds
(docs/benchmarks.md quotes it). Not a `raftka bench` command: it needs confluent-kafka.

Each round, per face: produce RECORDS records of ~100 B JSON to a 6-partition RF=3
topic (min_insync_replicas 2, acks=all, idempotent, keyless), timed from the first send
to the last acknowledgement; then fetch them all from offset 0 of every partition.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from raftka.api.launcher import Cluster, make_cluster

PARTITIONS = 6
FETCH_TIMEOUT_S = 120.0


def _values(count: int) -> list[bytes]:
    return [b'{"i":%d,"payload":"%s"}' % (i, b"x" * 80) for i in range(count)]


def _kafka_round(cluster: Cluster, topic: str, count: int) -> tuple[float, float]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    bootstrap = ",".join(str(b.kafka) for b in cluster.config.brokers)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    values = _values(count)
    start = time.perf_counter()
    for v in values:
        while True:
            try:
                producer.produce(topic, value=v)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.01)
    assert producer.flush(FETCH_TIMEOUT_S) == 0
    produce_s = time.perf_counter() - start
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = 0
    start = time.perf_counter()
    deadline = start + FETCH_TIMEOUT_S
    while got < count and time.perf_counter() < deadline:
        got += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
    fetch_s = time.perf_counter() - start
    consumer.close()
    assert got == count, f"fetched {got} of {count}"
    return count / produce_s, count / fetch_s


def _http_round(cluster: Cluster, topic: str, count: int) -> tuple[float, float]:
    import orjson

    from raftka.client import Consumer, Producer

    urls = [b.url for b in cluster.config.brokers]
    values = [orjson.loads(v) for v in _values(count)]
    start = time.perf_counter()
    with Producer(urls, acks="all", idempotent=True) as producer:
        for v in values:
            producer.send(topic, v)
        producer.flush()
    produce_s = time.perf_counter() - start
    got = 0
    start = time.perf_counter()
    deadline = start + FETCH_TIMEOUT_S
    with Consumer(urls, assign=[(topic, p, 0) for p in range(PARTITIONS)]) as consumer:
        while got < count and time.perf_counter() < deadline:
            got += len(consumer.poll(1.0))
    fetch_s = time.perf_counter() - start
    assert got == count, f"fetched {got} of {count}"
    return count / produce_s, count / fetch_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="raftka-bench-kafka-") as root:
        cluster = make_cluster(Path(root), 3, kafka=True, fsync="never")
        cluster.start_all()
        try:
            cluster.wait_ready()
            results: dict[str, list[tuple[float, float]]] = {"kafka": [], "http": []}
            for r in range(args.rounds):
                faces = ["kafka", "http"] if r % 2 == 0 else ["http", "kafka"]
                for face in faces:
                    topic = f"{face}-{r}"
                    resp = cluster.request(
                        1,
                        "POST",
                        "/v1/topics",
                        {
                            "name": topic,
                            "partitions": PARTITIONS,
                            "replication_factor": 3,
                            "config": {"min_insync_replicas": 2},
                        },
                    )
                    assert resp.status == 201, resp.body
                    run = _kafka_round if face == "kafka" else _http_round
                    results[face].append(run(cluster, topic, args.records))
                    print(face, r, [f"{x:,.0f}" for x in results[face][-1]], flush=True)
            for face, rounds in results.items():
                produce = statistics.median(p for p, _ in rounds)
                fetch = statistics.median(f for _, f in rounds)
                print(f"{face}: produce {produce:,.0f} records/s, fetch {fetch:,.0f} records/s")
        finally:
            cluster.close()


if __name__ == "__main__":
    main()
