"""A TLS cluster on real broker processes, with certificates made by openssl in the test:
brokers serve HTTPS and talk to each other over it (replica fetches, forwards, sessions),
curl --cacert and the client with cacert= work, plain HTTP is refused."""

from __future__ import annotations

import http.client
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from raftka.api.launcher import Cluster, http_request, make_cluster
from raftka.api.settings import Security
from raftka.client import Consumer, Producer
from tests.integration.tls_certs import Certificates, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[Cluster]:
    security = Security(
        cluster_secret="tls-test-secret-0123456789", tls_cert=certs.chain, tls_key=certs.key
    )
    cluster = make_cluster(tmp_path_factory.mktemp("tls"), 3, security=security)
    cluster.ssl_context = ssl.create_default_context(cafile=certs.ca)
    try:
        cluster.start_all()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


def test_brokers_replicate_and_forward_over_tls_and_the_client_uses_cacert(
    tls_cluster: Cluster, certs: Certificates
) -> None:
    urls = [b.url for b in tls_cluster.brokers.values()]
    assert all(u.startswith("https://127.0.0.1:") for u in urls)
    tls_cluster.create_topic(1, "secure", partitions=3, rf=3)
    with Producer(urls[0], cacert=str(certs.ca), acks="all") as producer:
        sent = [producer.send("secure", {"n": i}, partition=i % 3).result() for i in range(6)]
    assert len(set(sent)) == 6
    topic = tls_cluster.get(2, "/v1/topics/secure")
    assert all(sorted(p["isr"]) == [1, 2, 3] for p in topic["partitions"])  # replica fetches
    assign = [("secure", p, 0) for p in range(3)]
    with Consumer(urls[1], assign=assign, cacert=str(certs.ca)) as consumer:
        got: list[int] = []
        while len(got) < 6:
            got += [r.value["n"] for r in consumer.poll(5.0)]
    assert sorted(got) == list(range(6))


def test_curl_with_the_ca_gets_in(tls_cluster: Cluster, certs: Certificates) -> None:
    url = tls_cluster.brokers[1].url + "/v1/cluster"
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(certs.ca), url],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert orjson.loads(out.stdout)["controller"] is not None
    unverified = subprocess.run(["curl", "-sS", url], capture_output=True, timeout=30)
    assert unverified.returncode != 0  # an unknown CA is refused by default


def test_plain_http_is_refused(tls_cluster: Cluster) -> None:
    address = tls_cluster.brokers[1].address
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        http_request(address.http_host, address.http_port, "GET", "/healthz", timeout_s=5)
    assert tls_cluster.request(1, "GET", "/healthz").status == 200  # and HTTPS still works


def test_the_certificates_are_what_docs_show(certs: Certificates) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    assert "openssl req -x509 -newkey ec" in docs and "subjectAltName = IP:127.0.0.1" in docs


def test_mutual_tls_wants_a_client_certificate(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates
) -> None:
    """With tls_client_ca brokers ask every caller for a certificate, each other included
    (they present their own): the cluster forms, curl with the certificate gets in,
    without one it does not."""
    security = Security(
        cluster_secret="mtls-test-secret-0123456789",
        tls_cert=certs.chain,
        tls_key=certs.key,
        tls_client_ca=certs.ca,
    )
    cluster = make_cluster(tmp_path_factory.mktemp("mtls"), 3, security=security)
    context = ssl.create_default_context(cafile=certs.ca)
    context.load_cert_chain(certs.chain, certs.key)  # the broker's, as a client's here
    cluster.ssl_context = context
    try:
        cluster.start_all()
        cluster.wait_ready()  # sessions and registrations over mutual TLS
        cluster.create_topic(1, "m", partitions=1, rf=3)
        assert cluster.produce(2, "m", 0, ["x"]) == [0]  # forwarded unless 2 leads
        url = cluster.brokers[1].url + "/healthz"
        curl = ["curl", "-sS", "--cacert", str(certs.ca), url]
        assert subprocess.run(curl, capture_output=True, timeout=30).returncode != 0
        with_cert = [*curl, "--cert", str(certs.chain), "--key", str(certs.key)]
        assert subprocess.run(with_cert, capture_output=True, timeout=30, check=True).stdout
    finally:
        cluster.close()
