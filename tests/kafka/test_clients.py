"""Real Kafka clients nobody here wrote (kcat, confluent-kafka, kafka-python, aiokafka)
against three raftka brokers, and records crossing between the Kafka and HTTP faces."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from raftka.api.launcher import Cluster, make_cluster, wait_for
from tests.kafka.conftest import CLIENT_TIMEOUT_S, bootstrap, http_records, kcat

pytestmark = pytest.mark.integration


def test_kcat_metadata_names_the_kafka_listeners_and_the_real_leaders(kafka_cluster: Cluster):
    kafka_cluster.create_topic(1, "meta", 3, 3)
    listing = kcat(kafka_cluster, "-L", "-t", "meta")
    for b in kafka_cluster.config.brokers:
        assert f"broker {b.broker_id} at {b.kafka}" in listing
    described = kafka_cluster.get(1, "/v1/topics/meta")
    for p in described["partitions"]:
        assert f"partition {p['partition']}, leader {p['leader']}," in listing
    metrics = [
        urllib.request.urlopen(f"{b.url}/metrics", timeout=10).read().decode()
        for b in kafka_cluster.config.brokers
    ]
    assert any('raftka_kafka_requests_total{api="Metadata"}' in m for m in metrics)


def test_kcat_lines_are_read_back_by_kcat_and_over_http(kafka_cluster: Cluster):
    kafka_cluster.create_topic(1, "lines", 3, 3)
    lines = ["plain text", '{"id":1}', "42", '"quoted"', "null"]
    kcat(
        kafka_cluster,
        "-P",
        "-t",
        "lines",
        "-K",
        ":",
        stdin="".join(f"k{i}:{v}\n" for i, v in enumerate(lines)),
    )
    consumed = kcat(
        kafka_cluster, "-C", "-t", "lines", "-o", "beginning", "-e", "-q", "-f", "%k=%s\n"
    )
    assert sorted(consumed.splitlines()) == sorted(f"k{i}={v}" for i, v in enumerate(lines))
    by_key = {
        base64.b64decode(r["key_b64"]).decode(): r for r in http_records(kafka_cluster, "lines", 3)
    }
    assert base64.b64decode(by_key["k0"]["value_b64"]) == b"plain text"
    assert by_key["k1"]["value"] == {"id": 1}
    assert by_key["k2"]["value"] == 42
    assert by_key["k3"]["value"] == "quoted"
    assert base64.b64decode(by_key["k4"]["value_b64"]) == b"null"  # bytes, not a null


def test_kcat_produces_to_a_topic_its_metadata_request_creates(kafka_cluster: Cluster):
    kcat(kafka_cluster, "-P", "-t", "auto-created", stdin="1\n")
    described = kafka_cluster.get(1, "/v1/topics/auto-created")
    assert [(p["partition"], len(p["replicas"])) for p in described["partitions"]] == [(0, 1)]
    assert [r["value"] for r in http_records(kafka_cluster, "auto-created", 1)] == [1]


def test_acks_0_gets_no_answer_and_still_writes(kafka_cluster: Cluster):
    kafka_cluster.create_topic(1, "acks0", 1, 3)
    kcat(kafka_cluster, "-P", "-t", "acks0", "-X", "request.required.acks=0", stdin="1\n2\n3\n")
    wait_for(
        lambda: [r.get("value") for r in http_records(kafka_cluster, "acks0", 1)] == [1, 2, 3],
        "the acks=0 records",
    )


def test_http_records_read_with_kcat_as_their_json_text(kafka_cluster: Cluster):
    kafka_cluster.create_topic(1, "from-http", 1, 3)
    resp = kafka_cluster.request(
        1,
        "POST",
        "/v1/topics/from-http/records",
        {
            "records": [
                {"key": "alice", "value": {"n": 1}, "headers": {"src": "web"}, "timestamp": 1234},
                {"value_b64": base64.b64encode(b"\x00\xff").decode()},
            ]
        },
    )
    assert resp.status == 200, resp.body
    out = kcat(
        kafka_cluster, "-C", "-t", "from-http", "-o", "beginning", "-e", "-q", "-f", "%k|%s|%h|%T\n"
    )
    first = out.splitlines()[0]
    assert first == '"alice"|{"n":1}|src=web|1234'
    consumer = KafkaConsumer(bootstrap_servers=bootstrap(kafka_cluster), consumer_timeout_ms=10_000)
    try:
        consumer.assign([TopicPartition("from-http", 0)])
        consumer.seek_to_beginning()
        records = [r for _, batch in consumer.poll(10_000, max_records=10).items() for r in batch]
    finally:
        consumer.close()
    assert [r.value for r in records] == [b'{"n":1}', b"\x00\xff"]
    assert records[0].timestamp == 1234
    assert records[0].headers == [("src", b"web")]


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_librdkafka_idempotent_acks_all_compressed(kafka_cluster: Cluster, compression: str):
    topic = f"rdk-{compression}"
    kafka_cluster.create_topic(1, topic, 2, 3)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap(kafka_cluster),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": 5,
        }
    )
    delivered: list[tuple[int, int]] = []

    def report(err, msg):  # type: ignore[no-untyped-def]
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    for i in range(200):
        producer.produce(topic, value=b'{"i":%d}' % i, key=b"k%d" % (i % 7), on_delivery=report)
    assert producer.flush(CLIENT_TIMEOUT_S) == 0
    assert len(delivered) == 200
    records = http_records(kafka_cluster, topic, 2)
    assert sorted(r["value"]["i"] for r in records) == list(range(200))
    assert {(r["partition"], r["offset"]) for r in records} == set(delivered)


def test_kafka_python_admin_producer_and_consumer(kafka_cluster: Cluster):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(kafka_cluster))
    try:
        admin.create_topics([NewTopic("kp", num_partitions=2, replication_factor=3)])
        # Created at the controller; broker 1 learns it from the metadata log a moment later.
        wait_for(lambda: "kp" in kafka_cluster.get(1, "/v1/topics")["topics"], "kp on broker 1")
        producer = KafkaProducer(bootstrap_servers=bootstrap(kafka_cluster), acks="all")
        sent = [
            producer.send("kp", value=b"v%d" % i, key=b"k", headers=[("h", b"x")]).get(30)
            for i in range(20)
        ]
        producer.close()
        assert [m.offset for m in sent] == list(range(20))  # one key: one partition
        consumer = KafkaConsumer(bootstrap_servers=bootstrap(kafka_cluster))
        consumer.assign([TopicPartition("kp", sent[0].partition)])
        consumer.seek_to_beginning()
        got: list = []
        wait_for(
            lambda: (
                got.extend(r for b in consumer.poll(1000).values() for r in b) or len(got) >= 20
            ),
            "20 records",
        )  # noqa: E501
        consumer.close()
        assert [(r.key, r.value, r.headers) for r in got] == [
            (b"k", b"v%d" % i, [("h", b"x")]) for i in range(20)
        ]
        admin.delete_topics(["kp"])
        wait_for(lambda: "kp" not in kafka_cluster.get(1, "/v1/topics")["topics"], "kp deleted")
    finally:
        admin.close()


def test_aiokafka_produces_and_consumes(kafka_cluster: Cluster):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    kafka_cluster.create_topic(1, "aio", 1, 3)

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(kafka_cluster), acks="all")
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait("aio", b"m%d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(kafka_cluster), auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition("aio", 0)])
            await consumer.seek_to_beginning()
            values: list[bytes] = []
            while len(values) < 10:
                batches = await consumer.getmany(timeout_ms=1000)
                values += [r.value for b in batches.values() for r in b]
            return values
        finally:
            await consumer.stop()

    assert asyncio.run(asyncio.wait_for(run(), CLIENT_TIMEOUT_S)) == [b"m%d" % i for i in range(10)]


def api_versions(cluster: Cluster, version: int) -> bytes:
    """One raw ApiVersions exchange on a new connection; the response body."""
    host, port = str(cluster.config.brokers[0].kafka).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        body = struct.pack(">hhih", 18, version, 7, 1) + b"t"
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4))[0]
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
    return data


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x02\x00\x03",  # shorter than a header
        b"\x7f\xff\xff\xff",  # a frame larger than max_request_bytes
        b"\xff\xff\xff\xf0",  # a negative size
        struct.pack(">ihhih", 12, 3, 8, 1, 2) + b"ab",  # Metadata v8 with no body
        struct.pack(">ihhih", 10, 999, 0, 1, 0),  # an API key nobody knows
        struct.pack(">ihhihi", 14, 1, 11, 1, 0, -5) + b"\x00\x00",  # Fetch v11 of garbage
    ],
)
def test_garbage_closes_its_connection_and_the_broker_serves_on(
    kafka_cluster: Cluster, garbage: bytes
):
    host, port = str(kafka_cluster.config.brokers[0].kafka).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(garbage)
        assert s.recv(100) == b""  # closed, with nothing answered
    assert struct.unpack_from(">ih", api_versions(kafka_cluster, 0)) == (7, 0)


def test_produce_v2_is_advertised_but_refused_per_partition_with_error_35(
    kafka_cluster: Cluster,
):
    from kafka.protocol.producer import ProduceRequest, ProduceResponse

    topic = ProduceRequest.TopicProduceData
    request = ProduceRequest(
        acks=1,
        timeout_ms=1000,
        topic_data=[
            topic(name="v2", partition_data=[topic.PartitionProduceData(index=0, records=b"x")])
        ],
    )
    request.with_header(correlation_id=5, client_id="old")
    host, port = str(kafka_cluster.config.brokers[0].kafka).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(bytes(request.encode(version=2, header=True, framed=True)))
        size = struct.unpack(">i", s.recv(4))[0]
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
    assert struct.unpack_from(">i", data)[0] == 5
    response = ProduceResponse.decode(data[4:], version=2)
    assert response.responses[0].partition_responses[0].error_code == 35


def test_api_versions_at_an_unknown_version_answers_error_35(kafka_cluster: Cluster):
    data = api_versions(kafka_cluster, 99)
    correlation_id, error_code, count = struct.unpack_from(">ihi", data)
    assert (correlation_id, error_code) == (7, 35)
    keys = {struct.unpack_from(">hhh", data, 10 + 6 * i)[0] for i in range(count)}
    assert {0, 1, 2, 3, 18} <= keys


def _topic_errors_of_metadata_v1(body: bytes) -> dict[str, int]:
    """The (topic name -> error code) of a Metadata v1 response body (after its header)."""
    pos = 4  # correlation id
    (brokers,) = struct.unpack_from(">i", body, pos)
    pos += 4
    for _ in range(brokers):
        pos += 4  # node id
        (host_len,) = struct.unpack_from(">h", body, pos)
        pos += 2 + host_len + 4  # host, port
        (rack_len,) = struct.unpack_from(">h", body, pos)
        pos += 2 + max(rack_len, 0)
    pos += 4  # controller id
    (topics,) = struct.unpack_from(">i", body, pos)
    pos += 4
    errors = {}
    for _ in range(topics):
        error, name_len = struct.unpack_from(">hh", body, pos)
        pos += 4
        errors[body[pos : pos + name_len].decode()] = error
        pos += name_len + 1  # name, is_internal
        (partitions,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(partitions):
            pos += 2 + 4 + 4  # error, partition, leader
            for _ in range(2):  # replicas, isr
                (count,) = struct.unpack_from(">i", body, pos)
                pos += 4 + 4 * count
    return errors


def test_without_auto_create_a_metadata_request_leaves_a_missing_topic_missing(
    tmp_path: Path,
) -> None:
    cluster = make_cluster(tmp_path, 1, kafka=True, auto_create_topics_enable=False)
    cluster.start_all()
    try:
        cluster.wait_ready()
        host, port = str(cluster.config.brokers[0].kafka).rsplit(":", 1)
        request = struct.pack(">hhih", 3, 1, 9, 1) + b"t" + struct.pack(">ih", 1, 4) + b"nope"
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            answer = s.recv(size, socket.MSG_WAITALL)
        assert _topic_errors_of_metadata_v1(answer) == {"nope": 3}  # UNKNOWN_TOPIC_OR_PARTITION
        assert cluster.request(1, "GET", "/v1/topics/nope").status == 404
    finally:
        cluster.close()
