"""TCP probes for the network tests: an echo server and a one-shot client, each run as a
small Python program inside a namespace (or in the harness's own, the root one)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from raftka.chaos.netns import NetworkLab

ECHO_PORT = 7070
PROBE_TIMEOUT_S = 1.0

ECHO_SERVER = """
import socket, sys, threading
def serve(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""

PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.sendall(b"ping")
        print("ok" if c.recv(4) == b"ping" else "bad")
except OSError as exc:
    print(type(exc).__name__)
"""


@contextmanager
def echo_servers(lab: NetworkLab) -> Iterator[None]:
    """An echo server on every node; all stopped on exit."""
    procs = [
        subprocess.Popen(
            [*lab.exec_prefix(n), sys.executable, "-c", ECHO_SERVER, lab.address(n), str(ECHO_PORT)]
        )
        for n in lab.node_ids
    ]
    try:
        for n in lab.node_ids:
            deadline = time.monotonic() + 30
            while connect_from_host(lab, n) != "ok":
                assert time.monotonic() < deadline, f"echo server on node {n} never answered"
                time.sleep(0.05)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def connect(lab: NetworkLab, src: int, dst: int, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """'ok' when node src reaches dst's echo server, else the error's name."""
    done = subprocess.run(
        [*lab.exec_prefix(src), sys.executable, "-c", PROBE, lab.address(dst), str(ECHO_PORT)]
        + [str(timeout_s)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def connect_from_host(lab: NetworkLab, dst: int, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    try:
        with socket.create_connection((lab.address(dst), ECHO_PORT), timeout=timeout_s) as c:
            c.sendall(b"ping")
            return "ok" if c.recv(4) == b"ping" else "bad"
    except OSError as exc:
        return type(exc).__name__


def connect_seconds(lab: NetworkLab, dst: int) -> float:
    """How long a TCP handshake from the harness to node dst takes."""
    start = time.monotonic()
    with socket.create_connection((lab.address(dst), ECHO_PORT), timeout=10):
        return time.monotonic() - start


OPEN_CONNECTION = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
for line in sys.stdin:
    try:
        c.sendall(b"ping")
        print("ok" if c.recv(4) == b"ping" else "bad", flush=True)
    except OSError as exc:
        print(type(exc).__name__, flush=True)
"""


class OpenConnection:
    """One TCP connection from node src to dst's echo server, kept open across faults."""

    def __init__(self, lab: NetworkLab, src: int, dst: int) -> None:
        self.process = subprocess.Popen(
            [*lab.exec_prefix(src), sys.executable, "-c", OPEN_CONNECTION, lab.address(dst)]
            + [str(ECHO_PORT), str(PROBE_TIMEOUT_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def round_trip(self) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
