"""What aiohttp refuses before any handler runs is answered in the contract's JSON error
shape too, on a real broker process (its own listener and request handler)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import orjson
import pytest

from raftka.api.launcher import Cluster, make_cluster

MALFORMED = {
    "invalid UTF-8 in the path": b"GET /v1/topics/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "a URL over 8,190 bytes": b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header over 8,190 bytes": b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "1,000 headers": b"GET /healthz HTTP/1.1\r\n"
    + b"".join(b"X-H%d: 1\r\n" % i for i in range(1000))
    + b"\r\n",
    "an unknown method": b"FROB /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "a garbled request line": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path_factory.mktemp("protocol-errors"), 1)
    try:
        cluster.start_all()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


def _raw(cluster: Cluster, request: bytes) -> tuple[int, dict[str, str], bytes]:
    address = cluster.brokers[1].address
    with socket.create_connection((address.http_host, address.http_port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_a_request_refused_before_any_handler_gets_the_json_error_shape(
    broker: Cluster, what: str
) -> None:
    status, headers, body = _raw(broker, MALFORMED[what])
    assert 400 <= status < 500, (status, body)
    assert headers["Content-Type"].startswith("application/json")
    error = orjson.loads(body)["error"]
    assert error["code"] in ("INVALID_REQUEST", "REQUEST_TOO_LARGE")
    assert error["message"]
    # The broker still serves.
    assert broker.request(1, "GET", "/healthz").status == 200
