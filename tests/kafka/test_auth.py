"""SASL/PLAIN, ACLs and TLS on the Kafka listener, with librdkafka (confluent-kafka) against
real brokers that have `[[users]]`: a user's name and token authenticate it, its ACLs
decide what each Kafka request may do, exactly as over HTTP."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.metadata import MetadataResponse
from kafka.protocol.sasl import SaslHandshakeRequest, SaslHandshakeResponse

from raftka.api.acl import Acl, Operation, User
from raftka.api.launcher import Cluster, make_cluster, wait_for
from raftka.api.settings import Security
from raftka.api.tokens import hash_token
from tests.integration.tls_certs import make_certificates
from tests.kafka.conftest import CLIENT_TIMEOUT_S, bootstrap

pytestmark = pytest.mark.integration

SECRET = "kafka-auth-secret-0123456789"
TOKENS = {
    "admin": "admin-token-0123456789",
    "app": "app-token-01234567890",
    "reader": "reader-token-0123456",
}
USERS = (
    User(
        "admin",
        hash_token(TOKENS["admin"]),
        (Acl(frozenset(Operation), topics=("*",), groups=("*",)),),
    ),
    User(
        "app",
        hash_token(TOKENS["app"]),
        (
            Acl(
                frozenset({Operation.PRODUCE, Operation.CONSUME}),
                topics=("orders.*",),
                groups=("app-*",),
            ),
        ),
    ),
    User(
        "reader",
        hash_token(TOKENS["reader"]),
        (Acl(frozenset({Operation.CONSUME}), topics=("logs",), groups=("r-*",)),),
    ),
)


def _start(cluster: Cluster) -> Cluster:
    cluster.headers["Authorization"] = f"Bearer {TOKENS['admin']}"
    cluster.start_all()
    cluster.wait_ready()
    return cluster


@pytest.fixture(scope="module")
def sasl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    security = Security(cluster_secret=SECRET, users=USERS)
    cluster = make_cluster(tmp_path_factory.mktemp("kafka-sasl"), 1, kafka=True, security=security)
    try:
        _start(cluster)
        for topic in ("orders.eu", "logs", "secret"):
            cluster.create_topic(1, topic, 1, 1)
        yield cluster
    finally:
        cluster.close()


def _config(cluster: Cluster, user: str, token: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap(cluster),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": TOKENS[user] if token is None else token,
        **more,
    }


def _produce(config: dict[str, Any], topic: str, values: list[bytes]) -> list[KafkaError | None]:
    """The delivery outcome of each value, in order (None: delivered)."""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 20_000})
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, msg: outcomes.append(err))
    assert producer.flush(CLIENT_TIMEOUT_S) == 0
    return outcomes


def _consume(config: dict[str, Any], topic: str, count: int) -> list[bytes]:
    consumer = Consumer({**config, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []

    def enough() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got.append(message.value())
        return len(got) >= count

    try:
        wait_for(enough, f"{count} records of {topic}")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


METADATA_V0 = struct.pack(">hhih", 3, 0, 1, -1) + struct.pack(">i", 0)  # every topic
API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, -1)  # (request header v1, no client id)


def _first_answer(address: str, request: bytes, tls: ssl.SSLContext | None = None) -> bytes:
    """What the listener answers `request` sent first on a new connection (b"": it
    closed the connection)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT_S) as raw:
        try:
            sock = raw if tls is None else tls.wrap_socket(raw, server_hostname=host)
            sock.sendall(struct.pack(">i", len(request)) + request)
            return sock.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            return b""


def test_a_user_with_its_token_produces_idempotently_and_consumes_in_a_group(
    sasl_cluster: Cluster,
) -> None:
    config = _config(sasl_cluster, "app")
    values = [f"order {i}".encode() for i in range(5)]
    assert _produce({**config, "enable.idempotence": True}, "orders.eu", values) == [None] * 5
    assert _consume({**config, "group.id": "app-billing"}, "orders.eu", 5) == values
    committed = sasl_cluster.get(1, "/v1/groups/app-billing/offsets")["offsets"]
    assert [(o["topic"], o["offset"]) for o in committed] == [("orders.eu", 5)]


def test_a_wrong_token_fails_to_authenticate(sasl_cluster: Cluster) -> None:
    errors: list[KafkaError] = []
    config = _config(sasl_cluster, "app", token=TOKENS["reader"], error_cb=errors.append)
    producer = Producer(config)
    wait_for(
        lambda: (
            producer.poll(0.2) is not None
            and any(e.code() == KafkaError._AUTHENTICATION for e in errors)
        ),
        "librdkafka to report an authentication failure",
    )
    assert "SASL authentication error" in str(errors[0])


def test_a_user_without_produce_acl_gets_a_topic_authorization_error(
    sasl_cluster: Cluster,
) -> None:
    outcomes = _produce(_config(sasl_cluster, "reader"), "logs", [b"1"])
    assert [e.code() if e else None for e in outcomes] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # Nothing was written.
    assert sasl_cluster.get(1, "/v1/topics/logs/partitions/0/offsets?timestamp=latest") == {
        "offset": 0
    }


def test_admin_and_group_requests_need_their_acls(sasl_cluster: Cluster) -> None:
    config = _config(sasl_cluster, "reader")
    admin = AdminClient(config)  # kept: the future fails if its client is destroyed
    created = admin.create_topics([NewTopic("logs.new", 1, 1)])["logs.new"]
    with pytest.raises(KafkaException) as refused:
        created.result(CLIENT_TIMEOUT_S)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer = Consumer({**config, "group.id": "app-not-mine"})
    consumer.subscribe(["logs"])

    def group_refused() -> bool:
        message = consumer.poll(0.5)
        return (
            message is not None
            and message.error() is not None
            and (message.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED)
        )

    try:
        wait_for(group_refused, "GROUP_AUTHORIZATION_FAILED for a group not in the ACLs")
    finally:
        consumer.close()


def test_metadata_shows_only_the_topics_the_user_may_touch(sasl_cluster: Cluster) -> None:
    producer = Producer(_config(sasl_cluster, "app"))
    listed = producer.list_topics(timeout=CLIENT_TIMEOUT_S)
    assert set(listed.topics) == {"orders.eu"}
    asked = producer.list_topics("secret", timeout=CLIENT_TIMEOUT_S)
    assert asked.topics["secret"].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_requests_before_authentication_close_the_connection(sasl_cluster: Cluster) -> None:
    address = str(sasl_cluster.config.brokers[0].kafka)
    assert _first_answer(address, API_VERSIONS_V0) != b""
    assert _first_answer(address, METADATA_V0) == b""


def _recv_frame(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    return sock.recv(size, socket.MSG_WAITALL)


def _request(
    sock: socket.socket, key: int, version: int, correlation_id: int, body: bytes
) -> bytes:
    """Sends a request (header v1, no client id) and returns the response body."""
    frame = struct.pack(">hhih", key, version, correlation_id, -1) + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    answer = _recv_frame(sock)
    assert struct.unpack_from(">i", answer)[0] == correlation_id
    return answer[4:]


def test_a_v0_handshake_is_followed_by_the_bare_plain_message(sasl_cluster: Cluster) -> None:
    host, port = str(sasl_cluster.config.brokers[0].kafka).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT_S) as sock:
        handshake = SaslHandshakeRequest(mechanism="PLAIN").encode(version=0)
        answer = SaslHandshakeResponse.decode(_request(sock, 17, 0, 1, handshake), version=0)
        assert (answer.error_code, answer.mechanisms) == (0, ["PLAIN"])
        plain = b"\x00reader\x00" + TOKENS["reader"].encode()
        sock.sendall(struct.pack(">i", len(plain)) + plain)
        assert _recv_frame(sock) == b""  # an empty server token: authenticated
        metadata = MetadataResponse.decode(_request(sock, 3, 0, 2, struct.pack(">i", 0)), version=0)
        assert [t.name for t in metadata.topics] == ["logs"]
    with socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT_S) as sock:
        handshake = SaslHandshakeRequest(mechanism="SCRAM-SHA-256").encode(version=1)
        answer = SaslHandshakeResponse.decode(_request(sock, 17, 1, 1, handshake), version=1)
        assert (answer.error_code, answer.mechanisms) == (33, ["PLAIN"])
        assert sock.recv(4096) == b""  # and closed


def test_sasl_ssl_with_the_https_certificates_and_mutual_tls(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """With tls_client_ca the Kafka listener, like HTTPS, wants a client certificate too
    (here the broker's own, signed by the test CA)."""
    certs = make_certificates(tmp_path_factory.mktemp("kafka-certs"))
    security = Security(
        cluster_secret=SECRET,
        users=USERS,
        tls_cert=certs.chain,
        tls_key=certs.key,
        tls_client_ca=certs.ca,
    )
    cluster = make_cluster(tmp_path_factory.mktemp("kafka-tls"), 1, kafka=True, security=security)
    cluster.ssl_context = ssl.create_default_context(cafile=certs.ca)
    cluster.ssl_context.load_cert_chain(certs.chain, certs.key)
    try:
        _start(cluster)
        cluster.create_topic(1, "orders.tls", 1, 1)
        address = str(cluster.config.brokers[0].kafka)
        config = {
            **_config(cluster, "app"),
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(certs.ca),
            "ssl.certificate.location": str(certs.chain),
            "ssl.key.location": str(certs.key),
        }
        assert _produce(config, "orders.tls", [b"a", b"b"]) == [None, None]
        assert _consume({**config, "group.id": "app-tls"}, "orders.tls", 2) == [b"a", b"b"]
        # ApiVersions is answered over TLS with a client certificate only, never in clear.
        with_certificate = cluster.ssl_context
        assert _first_answer(address, API_VERSIONS_V0, with_certificate) != b""
        without = ssl.create_default_context(cafile=certs.ca)
        assert _first_answer(address, API_VERSIONS_V0, without) == b""
        assert _first_answer(address, API_VERSIONS_V0) == b""
    finally:
        cluster.close()
