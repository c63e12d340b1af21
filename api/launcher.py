"""The one way to run real broker processes: start, kill, restart, stop by PID (`raftka
dev`, tests, benchmarks, chaos).

Brokers run on 127.0.0.1 (the default), or each on a host of a `BrokerHosts` (the chaos
harness's network namespaces, chaos/netns.py, so the kernel can cut and slow their links);
the caller stays in the root namespace and reaches them all. Talks to brokers only as a
user would: a config file, `python -m raftka broker`, signals and HTTP. `close()` stops
every process it started, whatever happened; it never builds or removes the hosts (their
owner does, after closing the cluster).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import resource
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from raftka.api.broker_auth import BrokerAuth
from raftka.api.ports import free_ports
from raftka.api.settings import BrokerAddress, ClusterConfig, Security, Settings, render_config

T = TypeVar("T")

# Short timeouts so failover happens within a test, generous deadlines so a slow CI
# machine does not flake: waits poll a condition, they never sleep a fixed time.
TEST_SETTINGS = {
    "broker_session_timeout_ms": 3000,
    "broker_heartbeat_interval_ms": 500,
}
DEADLINE_S = 60.0
POLL_S = 0.1
# Each namespace has its own ports, so brokers on such hosts all use the `raftka dev` ones.
NETNS_HTTP_PORT = 9091
NETNS_RAFT_PORT = 19091


class BrokerHosts(Protocol):
    """Where brokers run when not on 127.0.0.1: one host (e.g. a network namespace) per
    node id, with its address and the command prefix that runs a process there."""

    @property
    def nodes(self) -> Iterable[int]: ...

    def address(self, node_id: int) -> str: ...

    def exec_prefix(self, node_id: int) -> list[str]: ...


def wait_for(condition: Callable[[], T | None], what: str, deadline_s: float = DEADLINE_S) -> T:
    """Polls `condition` until it returns something truthy; raises AssertionError after the deadline."""
    end = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while time.monotonic() < end:
        try:
            value = condition()
            if value:
                return value
        except (http.client.HTTPException, OSError, KeyError, ValueError) as exc:
            last_error = exc
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


@dataclass
class Response:
    status: int
    body: Any


def http_request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """One plain JSON request on a fresh connection (set-up and probes, not load); HTTPS
    with `ssl_context`."""
    conn: http.client.HTTPConnection = (
        http.client.HTTPConnection(host, port, timeout=timeout_s)
        if ssl_context is None
        else http.client.HTTPSConnection(host, port, timeout=timeout_s, context=ssl_context)
    )
    try:
        conn.request(
            method,
            path,
            body=None if body is None else orjson.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return Response(resp.status, orjson.loads(data) if data else None)


@dataclass
class BrokerProcess:
    address: BrokerAddress
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    root: Path
    config: ClusterConfig
    brokers: dict[int, BrokerProcess] = field(default_factory=dict)
    network: BrokerHosts | None = None  # brokers run in its namespaces when set
    open_files_limit: int | None = None  # RLIMIT_NOFILE of the brokers (soft and hard)
    # Sent with every request (e.g. a user's Authorization header).
    headers: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None  # for a TLS cluster: trusts its CA

    @property
    def config_path(self) -> Path:
        return self.root / "cluster.toml"

    # -- processes ---------------------------------------------------------

    def start(self, broker_id: int) -> None:
        """Starts (or, after `kill` or `stop`, restarts with its data) one broker."""
        b = self.brokers[broker_id]
        assert not b.running, f"broker {broker_id} is already running"
        prefix = [] if self.network is None else self.network.exec_prefix(broker_id)
        with open(b.log_path, "ab") as log:
            b.process = subprocess.Popen(
                [
                    *prefix,
                    sys.executable,
                    "-m",
                    "raftka",
                    "broker",
                    "--config",
                    str(self.config_path),
                    "--id",
                    str(broker_id),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=None if self.open_files_limit is None else self._limit_open_files,
            )

    def _limit_open_files(self) -> None:
        """Runs in the child before exec: the broker starts with this file handle limit."""
        assert self.open_files_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files_limit,) * 2)

    def start_all(self) -> None:
        for broker_id in self.brokers:
            self.start(broker_id)

    def kill(self, broker_id: int) -> None:
        b = self.brokers[broker_id]
        assert b.process is not None
        b.process.send_signal(signal.SIGKILL)
        b.process.wait(DEADLINE_S)

    def pause(self, broker_id: int) -> None:
        """SIGSTOP: the process stays, frozen (a long GC pause, a stalled VM)."""
        b = self.brokers[broker_id]
        assert b.process is not None
        b.process.send_signal(signal.SIGSTOP)

    def resume(self, broker_id: int) -> None:
        b = self.brokers[broker_id]
        assert b.process is not None
        b.process.send_signal(signal.SIGCONT)

    def stop(self, broker_id: int) -> int:
        """SIGTERM and wait: returns the exit code."""
        b = self.brokers[broker_id]
        assert b.process is not None
        if b.process.poll() is None:
            b.process.send_signal(signal.SIGTERM)
        try:
            return b.process.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            b.process.kill()
            b.process.wait()
            raise AssertionError(f"broker {broker_id} did not stop on SIGTERM") from None

    def stop_all(self, grace_s: float = DEADLINE_S) -> dict[int, int]:
        """SIGTERM to every running broker at once, then waits for each; one still running
        after `grace_s` is killed. Returns each stopped broker's exit code."""
        running = {i: b.process for i, b in self.brokers.items() if b.running}
        for process in running.values():
            assert process is not None
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)  # a paused broker cannot stop otherwise
                process.send_signal(signal.SIGTERM)
        codes = {}
        deadline = time.monotonic() + grace_s
        for broker_id, process in running.items():
            assert process is not None
            try:
                codes[broker_id] = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                codes[broker_id] = process.wait()
        return codes

    def close(self) -> None:
        for b in self.brokers.values():
            if b.process is not None and b.process.poll() is None:
                os.kill(b.process.pid, signal.SIGCONT)  # a paused broker cannot die otherwise
                b.process.kill()
                b.process.wait()

    def log_tail(self, broker_id: int, lines: int = 30) -> str:
        text = self.brokers[broker_id].log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- HTTP ------------------------------------------------------------------

    def request(
        self, broker_id: int, method: str, path: str, body: Any = None, *, timeout_s: float = 10.0
    ) -> Response:
        address = self.brokers[broker_id].address
        headers = dict(self.headers)
        if path.startswith("/internal/"):
            # The operator holds the config, so it may prove itself as the brokers do.
            auth = BrokerAuth(self.config.security.cluster_secret)
            headers.update(auth.headers(method, path.split("?", 1)[0]))
        return http_request(
            address.http_host,
            address.http_port,
            method,
            path,
            body,
            timeout_s=timeout_s,
            headers=headers,
            ssl_context=self.ssl_context,
        )

    def get(self, broker_id: int, path: str) -> Any:
        resp = self.request(broker_id, "GET", path)
        assert resp.status == 200, f"GET {path} on broker {broker_id}: {resp.status} {resp.body}"
        return resp.body

    def cluster_view(self, broker_id: int) -> Any:
        return self.get(broker_id, "/v1/cluster")

    def wait_ready(self, broker_ids: list[int] | None = None) -> int:
        """Waits until every given broker is healthy and sees a controller and every
        given broker alive; returns the controller's id."""
        ids = list(self.brokers) if broker_ids is None else broker_ids

        def ready() -> int | None:
            controller = None
            for broker_id in ids:
                if self.request(broker_id, "GET", "/healthz").status != 200:
                    return None
                view = self.cluster_view(broker_id)
                alive = {b["id"] for b in view["brokers"] if b["alive"]}
                if view["controller"] is None or not set(ids) <= alive:
                    return None
                controller = view["controller"]
            return controller

        return wait_for(ready, f"brokers {ids} ready with a controller")

    def create_topic(self, broker_id: int, name: str, partitions: int, rf: int) -> Any:
        resp = self.request(
            broker_id,
            "POST",
            "/v1/topics",
            {"name": name, "partitions": partitions, "replication_factor": rf},
        )
        assert resp.status == 201, resp.body
        return resp.body

    def produce(
        self, broker_id: int, topic: str, partition: int, values: list[Any], acks: str = "all"
    ) -> list[int]:
        """Produces until acknowledged, retrying 503s as a client would (acks=all by default:
        the records are then readable at once)."""

        def attempt() -> list[int] | None:
            resp = self.request(
                broker_id,
                "POST",
                f"/v1/topics/{topic}/partitions/{partition}/records?acks={acks}",
                {"records": [{"value": v} for v in values]},
            )
            if resp.status == 503:  # a leader is moving: retry as a client would
                return None
            assert resp.status == 200, resp.body
            return [o["offset"] for o in resp.body["offsets"]]

        return wait_for(attempt, f"a produce to {topic}-{partition}")

    def read_all(self, broker_id: int, topic: str, partition: int) -> list[Any]:
        values: list[Any] = []
        offset = 0
        while True:
            answer = self.get(
                broker_id, f"/v1/topics/{topic}/partitions/{partition}/records?offset={offset}"
            )
            values += [r["value"] for r in answer["records"]]
            if answer["next_offset"] >= answer["high_watermark"]:
                return values
            offset = answer["next_offset"]


def make_cluster(
    root: Path,
    voters: int,
    observers: int = 0,
    *,
    network: BrokerHosts | None = None,
    open_files_limit: int | None = None,
    kafka: bool = False,
    security: Security | None = None,
    **settings: Any,
) -> Cluster:
    """Brokers 1..voters vote in Raft, the next `observers` do not. With `network`, broker
    i listens on the address of its node i (the hosts must have nodes 1..count).
    `open_files_limit` starts the brokers with that RLIMIT_NOFILE. `kafka` gives every
    broker a Kafka protocol listener too (loopback only). `security` (a secret, TLS,
    users) goes into the config as is."""
    count = voters + observers
    # One call for every loopback port: ports from two calls may be the same (the first
    # call's were free again once it returned; a Kafka listener once got its HTTP port).
    loopback_ports_per_broker = (0 if network is not None else 2) + (1 if kafka else 0)
    ports = free_ports(loopback_ports_per_broker * count)
    kafka_ports = ports[:count] if kafka else []
    if network is None:
        loopback = ports[len(kafka_ports) :]
        http = [f"127.0.0.1:{loopback[2 * i]}" for i in range(count)]
        raft = [f"127.0.0.1:{loopback[2 * i + 1]}" for i in range(count)]
    else:
        missing = set(range(1, count + 1)) - set(network.nodes)
        assert not missing, f"the hosts have no node for brokers {sorted(missing)}"
        http = [f"{network.address(i + 1)}:{NETNS_HTTP_PORT}" for i in range(count)]
        raft = [f"{network.address(i + 1)}:{NETNS_RAFT_PORT}" for i in range(count)]
    security = security or Security()
    if network is not None and security.cluster_secret is None:
        # Brokers off loopback need a secret (api/settings.py).
        security = dataclasses.replace(security, cluster_secret=secrets.token_urlsafe(32))
    addresses = tuple(
        BrokerAddress(
            broker_id=i + 1,
            http=http[i],
            raft=raft[i] if i < voters else None,
            kafka=f"127.0.0.1:{kafka_ports[i]}" if kafka else None,
            scheme="https" if security.tls else "http",
        )
        for i in range(count)
    )
    config = ClusterConfig(
        cluster_id="it",
        data_dir=root / "data",
        brokers=addresses,
        settings=Settings(**{**TEST_SETTINGS, **settings}),
        security=security,
    )
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root, config, network=network, open_files_limit=open_files_limit)
    cluster.config_path.write_text(render_config(config))
    for a in addresses:
        cluster.brokers[a.broker_id] = BrokerProcess(a, root / f"broker-{a.broker_id}.log")
    return cluster
