"""`raftka dev`: a local cluster of N brokers as child processes, in the foreground.

Writes the cluster config under the data folder, starts the brokers, waits until a
controller is elected and every broker is registered, prints the URLs and a curl
example, and stops every broker cleanly (SIGTERM, then SIGKILL after a grace period) on
Ctrl-C or SIGTERM. Data stays in the folder, so a restart keeps every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from raftka.api.launcher import BrokerProcess, Cluster
from raftka.api.settings import BrokerAddress, ClusterConfig, Settings, render_config
from raftka.client.aio import Admin, ClientError, RaftkaError

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0
RAFT_PORT_OFFSET = 10_000


@dataclass(frozen=True, slots=True)
class DevCluster:
    config: ClusterConfig
    config_path: Path


def write_dev_config(brokers: int, base_port: int, data_dir: Path) -> DevCluster:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = ClusterConfig(
        cluster_id="local",
        data_dir=data_dir,
        brokers=tuple(
            BrokerAddress(
                broker_id=i,
                http=f"127.0.0.1:{base_port + i - 1}",
                raft=f"127.0.0.1:{base_port + RAFT_PORT_OFFSET + i - 1}",
            )
            for i in range(1, brokers + 1)
        ),
        settings=Settings(),
    )
    path = data_dir / "cluster.toml"
    path.write_text(render_config(config), encoding="utf-8")
    return DevCluster(config, path)


def dev_processes(cluster: DevCluster) -> Cluster:
    """The brokers as processes of the one starter tests, benchmarks and chaos use; each
    logs to data_dir/broker-ID.log."""
    data_dir = cluster.config.data_dir
    processes = Cluster(root=cluster.config_path.parent, config=cluster.config)
    for b in cluster.config.brokers:
        processes.brokers[b.broker_id] = BrokerProcess(b, data_dir / f"broker-{b.broker_id}.log")
    return processes


async def wait_until_ready(config: ClusterConfig, timeout_s: float = READY_TIMEOUT_S) -> dict:
    """Waits until some broker reports a controller and every broker registered and alive."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    wanted = {b.broker_id for b in config.brokers}
    last_problem = "no broker answered yet"
    while loop.time() < deadline:
        for b in config.brokers:
            async with Admin(b.url, retry_for_s=0, timeout_s=2.0) as admin:
                try:
                    cluster = await admin.cluster()
                except RaftkaError as exc:
                    last_problem = str(exc)
                    continue
            alive = {x["id"] for x in cluster["brokers"] if x["alive"]}
            if cluster["controller"] is not None and wanted <= alive:
                return cluster
            last_problem = f"controller={cluster['controller']}, alive={sorted(alive)}"
        await asyncio.sleep(0.2)
    raise ClientError(f"the cluster was not ready after {timeout_s:.0f} s ({last_problem})")


async def run_dev(brokers: int, base_port: int, data_dir: Path) -> int:
    cluster = write_dev_config(brokers, base_port, data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    processes = dev_processes(cluster)
    processes.start_all()
    try:
        ready = asyncio.ensure_future(wait_until_ready(cluster.config))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            ready.cancel()
            return 0
        info = ready.result()
        first = cluster.config.brokers[0].url
        print(f"raftka dev: {brokers} brokers ready (controller: broker {info['controller']})")
        for b in cluster.config.brokers:
            print(
                f"  broker {b.broker_id}: {b.url}   log: {cluster.config.data_dir}/broker-{b.broker_id}.log"
            )
        print(f"  config: {cluster.config_path}")
        print("try:")
        print(f'  curl -d \'{{"name": "demo", "partitions": 3}}\' {first}/v1/topics')
        print(
            f'  curl -d \'{{"records": [{{"key": "k", "value": "hello"}}]}}\' {first}/v1/topics/demo/records'
        )
        print(f"  curl '{first}/v1/topics/demo/partitions/0/records?offset=0'")
        print("Ctrl-C stops every broker.", flush=True)
        reported: set[int] = set()
        while not stop.is_set():
            for broker_id, b in processes.brokers.items():
                if b.process is not None and not b.running and broker_id not in reported:
                    reported.add(broker_id)
                    print(
                        f"raftka dev: broker {broker_id} exited with code {b.process.returncode}",
                        file=sys.stderr,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0
    finally:
        print("raftka dev: stopping brokers", flush=True)
        await loop.run_in_executor(None, processes.stop_all, STOP_GRACE_S)
