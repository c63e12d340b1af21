"""Readable tables for `raftka cluster status` and `raftka topic describe` (rich)."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.table import Table

from raftka.client.aio import Admin


async def fetch_status(bootstrap: str) -> dict[str, Any]:
    async with Admin(bootstrap) as admin:
        cluster = await admin.cluster()
        names = await admin.list_topics()
        topics = await asyncio.gather(*(admin.describe_topic(n) for n in names))
        groups = await admin.list_groups()
        described = await asyncio.gather(*(admin.describe_group(g) for g in groups))
        offsets = await asyncio.gather(*(admin.group_offsets(g) for g in groups))
    group_rows = [
        {
            "group": g,
            "state": d.get("state"),
            "members": len(d.get("members", [])),
            "lag": None if any(o.get("lag") is None for o in o_) else sum(o["lag"] for o in o_),
        }
        for g, d, o_ in zip(groups, described, offsets, strict=True)
    ]
    return {"cluster": cluster, "topics": topics, "groups": group_rows}


def _ids(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def _partition_rows(table: Table, topic: dict[str, Any], with_name: bool) -> None:
    for p in topic["partitions"]:
        cells = [str(p["partition"])]
        if with_name:
            cells.insert(0, topic["name"])
        cells += [
            "-" if p["leader"] is None else str(p["leader"]),
            str(p["leader_epoch"]),
            _ids(p["replicas"]),
            _ids(p["isr"]),
            "?" if p["log_start_offset"] is None else str(p["log_start_offset"]),
            "?" if p["high_watermark"] is None else str(p["high_watermark"]),
        ]
        table.add_row(*cells)


def _partition_table(title: str, with_name: bool) -> Table:
    table = Table(title=title, title_justify="left")
    if with_name:
        table.add_column("topic")
    for column in (
        "partition",
        "leader",
        "epoch",
        "replicas",
        "isr",
        "log start",
        "high watermark",
    ):
        table.add_column(column, justify="right" if column != "topic" else "left")
    return table


def print_status(status: dict[str, Any]) -> None:
    console = Console()
    cluster = status["cluster"]
    raft = cluster.get("raft") or {}
    controller = cluster["controller"]
    console.print(
        f"cluster [bold]{cluster['cluster_id']}[/bold]   controller: "
        f"{'none' if controller is None else f'broker {controller}'}   "
        f"raft term: {raft.get('term', '?')}   commit index: {raft.get('commit_index', '?')}"
    )
    brokers = Table(title="brokers", title_justify="left")
    for column in ("id", "url", "state", "role", "controller"):
        brokers.add_column(column)
    for b in cluster["brokers"]:
        state = "alive" if b["alive"] else ("fenced" if b.get("fenced") else "not registered")
        brokers.add_row(
            str(b["id"]),
            b["url"],
            f"[green]{state}[/green]" if b["alive"] else f"[red]{state}[/red]",
            "voter" if b["raft_voter"] else "observer",
            "*" if b["id"] == controller else "",
        )
    console.print(brokers)
    partitions = _partition_table("partitions", with_name=True)
    for topic in status["topics"]:
        _partition_rows(partitions, topic, with_name=True)
    console.print(partitions)
    groups = Table(title="consumer groups", title_justify="left")
    for column in ("group", "state", "members", "lag"):
        groups.add_column(column, justify="left" if column in ("group", "state") else "right")
    for g in status["groups"]:
        lag = "?" if g["lag"] is None else str(g["lag"])
        groups.add_row(g["group"], str(g["state"]), str(g["members"]), lag)
    console.print(groups if status["groups"] else "consumer groups: none")


def print_topic(topic: dict[str, Any]) -> None:
    console = Console()
    config = ", ".join(f"{k}={v}" for k, v in topic["config"].items())
    console.print(f"topic [bold]{topic['name']}[/bold]   {config}")
    table = _partition_table("partitions", with_name=False)
    _partition_rows(table, topic, with_name=False)
    console.print(table)
