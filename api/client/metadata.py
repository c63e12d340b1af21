"""What the client knows of the cluster: each topic's partitions and leaders, each broker's URL.

Learned from `GET /v1/topics/{topic}` and `GET /v1/cluster` through any broker, cached,
and refreshed when a caller says a topic's view is stale (a `LEADER_NOT_AVAILABLE`, a
connection failure). Concurrent refreshes of one topic share one request. Never decides
what to do with an error; callers do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from raftka.client.http import Cluster


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int | None
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: tuple[PartitionInfo, ...]

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    @staticmethod
    def from_json(doc: Any) -> TopicInfo:
        return TopicInfo(
            doc["name"],
            tuple(
                PartitionInfo(p["partition"], p["leader"], p["leader_epoch"])
                for p in sorted(doc["partitions"], key=lambda p: p["partition"])
            ),
        )


class Metadata:
    """A cache of topics and broker URLs, refreshed on demand."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._topics: dict[str, TopicInfo] = {}
        self._stale: set[str] = set()
        self._broker_urls: dict[int, str] = {}
        self._refreshing: dict[str, asyncio.Task[TopicInfo]] = {}

    async def topic(self, name: str) -> TopicInfo:
        """The topic's partitions and leaders, fetched if unknown or marked stale; raises
        UnknownTopic (and any error that outlived the cluster's retries)."""
        info = self._topics.get(name)
        if info is not None and name not in self._stale:
            return info
        task = self._refreshing.get(name)
        if task is None:
            task = asyncio.ensure_future(self._fetch(name))
            self._refreshing[name] = task
            task.add_done_callback(lambda _: self._refreshing.pop(name, None))
        return await asyncio.shield(task)

    def invalidate(self, topic: str) -> None:
        """The next lookup of `topic` asks the cluster again (and re-reads broker URLs)."""
        self._stale.add(topic)

    async def leader_url(self, topic: str, partition: int) -> str | None:
        """The URL of the partition's leader, or None while it has none (or it is unknown):
        then any broker will do, it answers LEADER_NOT_AVAILABLE or forwards."""
        info = await self.topic(topic)
        if partition >= info.partition_count:
            return None
        leader = info.partitions[partition].leader
        if leader is None:
            return None
        if leader not in self._broker_urls:
            await self._fetch_brokers()
        return self._broker_urls.get(leader)

    async def _fetch(self, name: str) -> TopicInfo:
        self._stale.discard(name)
        try:
            doc = await self.cluster.request("GET", f"/v1/topics/{name}")
            await self._fetch_brokers()
        except BaseException:
            self._stale.add(name)
            raise
        info = TopicInfo.from_json(doc)
        self._topics[name] = info
        return info

    async def _fetch_brokers(self) -> None:
        doc = await self.cluster.request("GET", "/v1/cluster")
        self._broker_urls = {b["id"]: b["url"].rstrip("/") for b in doc["brokers"]}
        self.cluster.learn([b["url"] for b in doc["brokers"] if b.get("alive")])
