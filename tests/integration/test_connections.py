"""Idle and slow connections time out, and past max_connections a broker refuses new ones
with a 503 instead of running out of file handles (issue 14: ~20,000 idle sockets made
/healthz time out and asyncio log 15,000 accept() tracebacks a second)."""

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import orjson

from raftka.api.launcher import Cluster, wait_for

MAX_CONNECTIONS = 200
# Without the limit, IDLE_SOCKETS would take every file handle the broker has.
OPEN_FILES_LIMIT = 1024
IDLE_SOCKETS = 2000
SLOW_CLIENTS = 20
# Long enough that filling the broker, one answered connection at a time, ends before the
# first of them times out, even on a loaded machine.
IDLE_TIMEOUT_MS = 10_000
HEADER_TIMEOUT_MS = 1000
BODY_TIMEOUT_MS = 1000
SLOW_BYTE_INTERVAL_S = 0.4  # below every timeout: only the phase's total time can stop it
LONG_POLL_IDLE_TIMEOUT_MS = 2000
LONG_POLL_MS = 2 * LONG_POLL_IDLE_TIMEOUT_MS  # a long-poll is not idle
MAX_LOG_BYTES = 100_000

SETTINGS = {
    "max_connections": MAX_CONNECTIONS,
    "connections_max_idle_ms": IDLE_TIMEOUT_MS,
    "request_header_timeout_ms": HEADER_TIMEOUT_MS,
    "request_body_timeout_ms": BODY_TIMEOUT_MS,
}


def _metric(cluster: Cluster, name: str) -> float:
    text = _raw_get(cluster, "/metrics").decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def _raw_get(cluster: Cluster, path: str) -> bytes:
    address = cluster.brokers[1].address
    with socket.create_connection((address.http_host, address.http_port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"GET {path}: {data[:100]!r}")  # wait_for retries on ValueError
    return data.split(b"\r\n\r\n", 1)[1]


class FloodSocket:
    """One idle client socket: connects in the background, never sends a byte."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex((host, port))
        self.received = b""
        self.closed_by_server = False

    def poll(self) -> None:
        """Reads what the broker sent; notes when it closed the connection."""
        while not self.closed_by_server:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:  # refused without a word: too many lingering
                chunk = b""
            except OSError:  # nothing to read yet, or not even connected yet
                return
            self.received += chunk
            self.closed_by_server = not chunk


@contextlib.contextmanager
def _trickling(
    connect: Callable[[], socket.socket], requests: list[tuple[bytes, bytes]]
) -> Iterator[None]:
    """Clients that send the first part of a request at once and the rest a byte every
    SLOW_BYTE_INTERVAL_S (slowloris)."""
    socks = []
    for whole, trickled in requests:
        sock = connect()
        sock.sendall(whole)
        socks.append((sock, trickled))
    stop = threading.Event()

    def trickle() -> None:
        position = 0
        while not stop.is_set():
            for sock, payload in socks:
                if position < len(payload):
                    with contextlib.suppress(OSError):  # closed by the broker: expected
                        sock.send(payload[position : position + 1])
            position += 1
            stop.wait(SLOW_BYTE_INTERVAL_S)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for sock, _ in socks:
            sock.close()


def _exchange(sock: socket.socket, path: str) -> tuple[int, bytes]:
    """One keep-alive GET on `sock`: the answer's status and body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv_some(sock)
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length, head
    while len(body) < int(length.group(1)):
        body += _recv_some(sock)
    return int(head.split(b" ", 2)[1]), body


def _recv_some(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("closed by the broker mid-answer")
    return chunk


def _fill(connect: Callable[[], socket.socket]) -> tuple[list[socket.socket], bytes]:
    """Opens connections that each had one answer (so the broker holds them, idle) until the
    broker refuses one; returns them and the refusal's body."""
    held: list[socket.socket] = []
    for _ in range(2 * MAX_CONNECTIONS):
        sock = connect()
        status, body = _exchange(sock, "/healthz")
        if status != 200:
            assert status == 503, body
            sock.close()
            return held, body
        held.append(sock)
    raise AssertionError(f"{len(held)} connections held and none refused")


def _closed_silently(sock: socket.socket) -> bool:
    """Whether the broker closed an idle connection without sending anything."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:  # still open
        return False
    except ConnectionResetError:
        return True


def test_idle_and_slow_connections_time_out_and_a_full_broker_refuses_politely(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(1, open_files_limit=OPEN_FILES_LIMIT, **SETTINGS)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "t", 1, 1)
    address = cluster.brokers[1].address

    def connect() -> socket.socket:
        return socket.create_connection((address.http_host, address.http_port), timeout=5)

    slow_header = (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200)
    slow_body = (
        b"POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n",
        b"{" + b" " * 300,
    )
    slow = [slow_header] * (SLOW_CLIENTS // 2) + [slow_body] * (SLOW_CLIENTS // 2)
    with _trickling(connect, slow):
        # Connections the broker has answered once, and so holds, fill it; then a new
        # client gets a prompt 503, not a hang.
        held, refusal = _fill(connect)
        assert len(held) <= MAX_CONNECTIONS
        assert orjson.loads(refusal)["error"]["code"] == "TOO_MANY_CONNECTIONS"

        # A flood of idle sockets against the full broker: refused with a 503 (or reset
        # while MAX_LINGERING_REFUSALS refused sockets still linger), never a crash.
        flood = [FloodSocket(address.http_host, address.http_port) for _ in range(IDLE_SOCKETS)]
        try:

            def refusals() -> int:
                for s in flood:
                    s.poll()
                return sum(s.received.startswith(b"HTTP/1.1 503") for s in flood)

            refused = wait_for(refusals, "a 503 to the flood", deadline_s=IDLE_TIMEOUT_MS / 1000)

            # The held connections are idle: the broker closes them, silently.
            wait_for(
                lambda: all(map(_closed_silently, held)),
                "the broker closing idle connections",
                deadline_s=3 * IDLE_TIMEOUT_MS / 1000,
            )
        finally:
            for s in flood:
                s.sock.close()
            for sock in held:
                sock.close()

    # With the flood gone, a normal client gets in.
    wait_for(
        lambda: cluster.request(1, "GET", "/healthz").status == 200,
        "/healthz answering again",
        deadline_s=3 * IDLE_TIMEOUT_MS / 1000,
    )
    assert cluster.produce(1, "t", 0, ["after the flood"], acks="1") == [0]
    read_back = cluster.request(1, "GET", "/v1/topics/t/partitions/0/records?offset=0")
    assert [r["value"] for r in read_back.body["records"]] == ["after the flood"]

    wait_for(
        lambda: _metric(cluster, "raftka_open_connections") <= 1,
        "every connection closed",
        deadline_s=15,
    )
    timed_out = 'raftka_timed_out_connections_total{{phase="{}"}}'
    log_bytes = cluster.brokers[1].log_path.stat().st_size
    print(f"\n{len(held)} held connections timed out; {refused} of {IDLE_SOCKETS} refused")
    print(f"broker log: {log_bytes} bytes")
    for name in ("raftka_refused_connections_total", "idle", "header", "body"):
        full_name = name if name.startswith("raftka") else timed_out.format(name)
        print(full_name, _metric(cluster, full_name))
    assert _metric(cluster, "raftka_refused_connections_total") >= refused + 1
    assert _metric(cluster, timed_out.format("idle")) >= len(held)
    assert _metric(cluster, timed_out.format("header")) >= SLOW_CLIENTS // 2
    assert _metric(cluster, timed_out.format("body")) >= SLOW_CLIENTS // 2
    assert log_bytes < MAX_LOG_BYTES, cluster.log_tail(1)
    assert "Traceback" not in cluster.brokers[1].log_path.read_text(), cluster.log_tail(1, 60)


def test_a_long_poll_outlives_the_idle_timeout(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(
        1, **{**SETTINGS, "connections_max_idle_ms": LONG_POLL_IDLE_TIMEOUT_MS}
    )
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "t", 1, 1)
    started = time.monotonic()
    answer = cluster.request(
        1,
        "GET",
        f"/v1/topics/t/partitions/0/records?offset=0&max_wait_ms={LONG_POLL_MS}",
        timeout_s=30,
    )
    waited_s = time.monotonic() - started
    assert answer.status == 200, answer.body
    assert answer.body["records"] == []
    assert waited_s >= LONG_POLL_MS / 1000 * 0.9
