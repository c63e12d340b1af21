"""The `raftka` commands against a real broker process, as a user runs them."""

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from raftka.api.cli.dev import RAFT_PORT_OFFSET
from raftka.api.launcher import Cluster, wait_for

RAFTKA = [sys.executable, "-m", "raftka"]
# HTTP ports here, Raft ports 10000 higher: under the ephemeral range (32768+) and apart
# from the range free_ports draws from.
DEV_BASE_PORT_MIN = 10_000
DEV_BASE_PORT_MAX = 12_000
TIMEOUT_S = 60


def run(cluster: Cluster, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAFTKA_BOOTSTRAP": cluster.brokers[1].url}
    return subprocess.run(
        [*RAFTKA, *args], input=stdin, capture_output=True, text=True, env=env, timeout=TIMEOUT_S
    )


def test_topic_produce_consume_and_status_commands(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()

    created = run(
        cluster, "topic", "create", "cli", "--partitions", "2", "--config", "retention_ms=60000"
    )
    assert created.returncode == 0, created.stderr
    assert run(cluster, "topic", "list").stdout.split() == ["cli"]
    assert "retention_ms=60000" in run(cluster, "topic", "describe", "cli").stdout

    produced = run(cluster, "produce", "cli", "--key-separator", ":", stdin="a:1\nb:2\nplain\n")
    assert produced.returncode == 0, produced.stderr
    consumed = run(cluster, "consume", "cli", "--from-beginning", "--max-records", "3")
    assert consumed.returncode == 0, consumed.stderr
    records = [orjson.loads(line) for line in consumed.stdout.splitlines()]
    assert {(r["key"], r["value"]) for r in records} == {("a", "1"), ("b", "2"), (None, "plain")}
    assert all(
        {"topic", "partition", "offset", "timestamp", "headers"} <= r.keys() for r in records
    )

    status = run(cluster, "cluster", "status")
    assert status.returncode == 0, status.stderr
    assert "controller: broker 1" in status.stdout
    assert "cli" in status.stdout

    assert run(cluster, "topic", "delete", "cli").returncode == 0
    assert run(cluster, "topic", "list").stdout.split() == []


def test_a_failing_command_prints_one_line_and_exits_non_zero(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    missing = run(cluster, "topic", "describe", "nope")
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == [
        "raftka: error: topic 'nope' does not exist (UNKNOWN_TOPIC)"
    ]
    assert "Traceback" not in missing.stderr
    too_many = run(cluster, "topic", "create", "x", "--replication-factor", "3")
    assert too_many.returncode != 0
    assert "INVALID_REPLICATION_FACTOR" in too_many.stderr
    with_debug = run(cluster, "--debug", "topic", "describe", "nope")
    assert with_debug.returncode != 0
    assert "Traceback" in with_debug.stderr


def test_raftka_dev_starts_a_ready_cluster_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    base_port = _free_base_port()
    dev = subprocess.Popen(
        [
            *RAFTKA,
            "dev",
            "--brokers",
            "3",
            "--base-port",
            str(base_port),
            "--data-dir",
            str(tmp_path),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert dev.stdout is not None
        lines: list[str] = []
        for line in dev.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "3 brokers ready" in output, output
        for i in range(3):
            assert f"http://127.0.0.1:{base_port + i}" in output
        assert "curl" in output
        assert (tmp_path / "cluster.toml").exists()
    finally:
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(TIMEOUT_S) == 0
    # Every broker was stopped with its parent.
    wait_for(lambda: not _raftka_brokers_for(tmp_path), "the dev brokers to exit")


def _free_base_port() -> int:
    """A base port whose three HTTP ports and three Raft ports (+10000) are all free, all
    below the ephemeral range so no client connection can take one meanwhile."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(DEV_BASE_PORT_MIN, DEV_BASE_PORT_MAX)
        ports = [base + i + offset for i in range(3) for offset in (0, RAFT_PORT_OFFSET)]
        if all(_bindable(port) for port in ports):
            return base
    raise AssertionError("no free port range for raftka dev")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _raftka_brokers_for(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(data_dir / "cluster.toml") in line]


def test_consume_with_a_group_commits_leaves_and_group_describe_shows_the_lag(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    assert run(cluster, "topic", "create", "gt", "--partitions", "2").returncode == 0
    lines = "".join(f"{i}\n" for i in range(6))
    assert run(cluster, "produce", "gt", stdin=lines).returncode == 0

    consumed = run(cluster, "consume", "gt", "--group", "cli", "--max-records", "4")
    assert consumed.returncode == 0, consumed.stderr
    assert len(consumed.stdout.splitlines()) == 4
    described = run(cluster, "group", "describe", "cli")
    assert described.returncode == 0, described.stderr
    # The member left: no members; 4 of 6 records committed, so a lag of 2 in all.
    view = cluster.get(1, "/v1/groups/cli")
    assert view["members"] == []
    offsets = cluster.get(1, "/v1/groups/cli/offsets")["offsets"]
    assert sum(o["lag"] for o in offsets) == 2
    assert "lag" in described.stdout and "gt" in described.stdout
    status = run(cluster, "cluster", "status")
    assert status.returncode == 0, status.stderr
    assert "consumer groups" in status.stdout and "cli" in status.stdout

    rest = run(cluster, "consume", "gt", "--group", "cli", "--max-records", "2")
    assert rest.returncode == 0, rest.stderr
    printed = [orjson.loads(line)["value"] for line in consumed.stdout.splitlines()]
    printed += [orjson.loads(line)["value"] for line in rest.stdout.splitlines()]
    assert sorted(printed) == [str(i) for i in range(6)]


def test_consume_with_a_group_leaves_the_group_on_sigterm(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "st", 1, 1)
    env = {**os.environ, "RAFTKA_BOOTSTRAP": cluster.brokers[1].url}
    consumer = subprocess.Popen(
        [*RAFTKA, "consume", "st", "--group", "sig"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: cluster.get(1, "/v1/groups/sig")["members"], "the member to join")
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(TIMEOUT_S) == 0, consumer.stderr.read() if consumer.stderr else ""
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert cluster.get(1, "/v1/groups/sig")["members"] == []
