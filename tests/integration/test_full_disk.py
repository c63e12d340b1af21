"""A full disk: three real brokers whose data lives on one small tmpfs.

Produce answers 507 INSUFFICIENT_STORAGE (retriable, with Retry-After), never a 500;
reads and metadata keep working even at 0 bytes free (the metadata journal is
preallocated and the brokers give up their reserve files); deleting a topic frees its
files; writes resume by themselves once space is back; every acknowledged record is
intact, and no broker ever dies. Needs root to mount the tmpfs: skipped otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from raftka.api.launcher import Cluster, make_cluster, wait_for

pytestmark = pytest.mark.integration

TMPFS_BYTES = 40 << 20
RESERVE_BYTES = 4 << 20
VALUE_BYTES = 60_000
RECORDS_PER_REQUEST = 8  # ~480 KB a request: the disk fills in a few dozen
FILL_DEADLINE_S = 60.0
BALLAST_CHUNK_BYTES = 1 << 20


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def call(cluster: Cluster, broker_id: int, method: str, path: str, body: Any = None) -> Answer:
    """One request, with the answer's headers (Cluster.request drops them)."""
    address = cluster.brokers[broker_id].address
    conn = http.client.HTTPConnection(address.http_host, address.http_port, timeout=30)
    try:
        conn.request(method, path, body=None if body is None else orjson.dumps(body))
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, orjson.loads(data) if data else None, dict(resp.getheaders()))
    finally:
        conn.close()


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def mount_tmpfs(directory: Path, size_bytes: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(directory)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = getattr(exc, "stderr", b"") or str(exc).encode()
        print(f"cannot mount a tmpfs: {reason.decode(errors='replace').strip()}")
        pytest.skip(f"mounting a tmpfs is refused here (needs root): {reason!r}")


@pytest.fixture
def small_disk_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    root = tmp_path / "cluster"
    data = root / "data"
    mount_tmpfs(data, TMPFS_BYTES)
    cluster: Cluster | None = None
    try:
        cluster = make_cluster(
            root, 3, disk_reserve_bytes=RESERVE_BYTES, replica_lag_time_max_ms=3000
        )
        yield cluster, data
    finally:
        if cluster is not None:
            cluster.close()
        subprocess.run(["umount", str(data)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            if os.path.ismount(data):
                subprocess.run(["umount", "-l", str(data)], check=False)


def assert_all_alive(cluster: Cluster) -> None:
    for broker_id, broker in cluster.brokers.items():
        assert broker.running, f"broker {broker_id} died:\n{cluster.log_tail(broker_id)}"


def fill_with_ballast(path: Path) -> None:
    """Takes every free byte, as another process on the disk would."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        chunk = b"\0" * BALLAST_CHUNK_BYTES
        while len(chunk) >= 4096:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def read_values(cluster: Cluster, broker_id: int, topic: str) -> dict[int, Any]:
    """Every readable record of partition 0. Raises ValueError (which `wait_for` retries)
    while the partition has no leader yet, e.g. right after a restart."""
    out: dict[int, Any] = {}
    offset = 0
    while True:
        resp = cluster.request(
            broker_id, "GET", f"/v1/topics/{topic}/partitions/0/records?offset={offset}"
        )
        if resp.status == 503:
            raise ValueError(f"broker {broker_id}: {resp.body}")
        assert resp.status == 200, resp.body
        answer = resp.body
        for r in answer["records"]:
            out[r["offset"]] = r["value"]
        if answer["next_offset"] >= answer["high_watermark"]:
            return out
        offset = answer["next_offset"]


def test_a_full_disk_refuses_writes_with_507_keeps_serving_and_recovers(
    small_disk_cluster: tuple[Cluster, Path],
) -> None:
    cluster, data = small_disk_cluster
    cluster.start_all()
    cluster.wait_ready()
    for name, config in (("fill", {"segment_bytes": 1 << 20}), ("keep", {})):
        resp = call(
            cluster,
            1,
            "POST",
            "/v1/topics",
            {"name": name, "partitions": 1, "replication_factor": 3, "config": config},
        )
        assert resp.status == 201, resp.body
    acked: dict[str, dict[int, Any]] = {"fill": {}, "keep": {}}

    def produce(topic: str, values: list[Any], broker_id: int = 2) -> Answer:
        resp = call(
            cluster,
            broker_id,
            "POST",
            f"/v1/topics/{topic}/partitions/0/records?acks=1",
            {"records": [{"value": v} for v in values]},
        )
        assert resp.status in (200, 503, 507), (resp.status, resp.body)
        if resp.status == 200:
            for o, v in zip(resp.body["offsets"], values, strict=True):
                acked[topic][o["offset"]] = v
        return resp

    # 1. Fill the disk until both topics are refused with 507.
    refused: dict[str, Answer] = {}
    n = 0

    def filled() -> bool:
        nonlocal n
        for topic in ("fill", "keep"):
            if topic in refused:
                continue
            n += 1
            pad = "x" * (VALUE_BYTES if topic == "fill" else 100)
            batch = [f"{n}.{k}.{pad}" for k in range(RECORDS_PER_REQUEST)]
            resp = produce(topic, batch)
            if resp.status == 507:
                refused[topic] = resp
        return len(refused) == 2

    wait_for(filled, "produce refused with 507 on a full disk", FILL_DEADLINE_S)
    for resp in refused.values():
        assert resp.body["error"]["code"] == "INSUFFICIENT_STORAGE", resp.body
        assert int(resp.headers["Retry-After"]) > 0, resp.headers
    assert acked["fill"] and acked["keep"]
    assert_all_alive(cluster)

    # 2. Another process takes every byte left: reads and metadata still work.
    ballast = data / "ballast"
    fill_with_ballast(ballast)
    assert free_bytes(data) < RESERVE_BYTES
    for broker_id in cluster.brokers:
        assert call(cluster, broker_id, "GET", "/healthz").status == 200
        assert call(cluster, broker_id, "GET", "/v1/topics/keep").status == 200
        fetched = call(cluster, broker_id, "GET", "/v1/topics/keep/partitions/0/records?offset=0")
        assert fetched.status == 200, fetched.body
    created = call(
        cluster, 3, "POST", "/v1/topics", {"name": "more", "partitions": 1, "replication_factor": 1}
    )
    assert created.status == 201, created.body
    # A broker whose write met the full disk gave its reserve file back. The three share
    # this disk, so the files they gave back can add up to a whole reserve of free space,
    # which lets logs write again: the other process takes those bytes too.
    refill = data / "ballast-2"
    fill_with_ballast(refill)
    assert produce("keep", ["refused"]).status == 507
    assert_all_alive(cluster)

    # 3. Deleting a topic frees its files, even with nothing writable; writes resume.
    before = free_bytes(data)
    assert call(cluster, 1, "DELETE", "/v1/topics/fill").status == 204
    leader_copy = len(acked["fill"]) * VALUE_BYTES  # followers held some of it too
    wait_for(lambda: free_bytes(data) > before + leader_copy, "the deleted topic's space")
    wait_for(lambda: produce("keep", ["after-delete"]).status == 200, "writes to resume")
    assert_all_alive(cluster)

    # 4. Metrics tell what happened.
    text = ""
    for broker_id in cluster.brokers:  # /metrics is text, not JSON: read it raw
        address = cluster.brokers[broker_id].address
        conn = http.client.HTTPConnection(address.http_host, address.http_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text += conn.getresponse().read().decode()
        finally:
            conn.close()
    assert "raftka_disk_free_bytes" in text
    refusals = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("raftka_disk_full_refusals_total")
    ]
    assert refusals and max(refusals) > 0, refusals

    # 5. Every acknowledged record is intact, on every broker, also after a restart.
    ballast.unlink()
    refill.unlink()

    def intact(broker_id: int) -> bool:
        values = read_values(cluster, broker_id, "keep")
        return all(values.get(o) == v for o, v in acked["keep"].items())

    for broker_id in cluster.brokers:
        wait_for(lambda b=broker_id: intact(b), f"acknowledged records on broker {broker_id}")
    assert_all_alive(cluster)
    for broker_id in cluster.brokers:
        assert cluster.stop(broker_id) == 0, cluster.log_tail(broker_id)
    cluster.start_all()
    cluster.wait_ready()
    for broker_id in cluster.brokers:
        wait_for(lambda b=broker_id: intact(b), f"acknowledged records on {broker_id} (restart)")
    assert_all_alive(cluster)
