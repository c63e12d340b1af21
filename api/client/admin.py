"""The asyncio admin client: topics, the cluster view, consumer groups, offsets.

Each call is one contract request that any broker can answer, retried while retriable
(through `Cluster`); answers are the contract's JSON documents, unchanged. Never caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raftka.client.http import DEFAULT_RETRY_FOR_S, REQUEST_TIMEOUT_S, Cluster, Transport


class Admin:
    """Administers a raftka cluster (asyncio flavour)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        token: str | None = None,
        cacert: str | None = None,
        retry_for_s: float = DEFAULT_RETRY_FOR_S,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._transport = Transport(token=token, cacert=cacert)
        self._cluster = Cluster(bootstrap, self._transport)
        self._retry_for_s = retry_for_s
        self._timeout_s = timeout_s

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("retry_for_s", self._retry_for_s)
        kwargs.setdefault("timeout_s", self._timeout_s)
        return await self._cluster.request(method, path, **kwargs)

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, Any] | None = None,
    ) -> Any:
        """Creates a topic; returns it as `describe_topic` would. Raises TopicExists."""
        body = {
            "name": name,
            "partitions": partitions,
            "replication_factor": replication_factor,
            "config": config or {},
        }
        return await self._request("POST", "/v1/topics", body=body)

    async def delete_topic(self, name: str) -> None:
        await self._request("DELETE", f"/v1/topics/{name}")

    async def list_topics(self) -> list[str]:
        doc = await self._request("GET", "/v1/topics")
        return list(doc["topics"])

    async def describe_topic(self, name: str) -> Any:
        """`{"name", "config", "partitions": [{"partition", "leader", "leader_epoch",
        "replicas", "isr", "log_start_offset", "high_watermark"}]}`"""
        return await self._request("GET", f"/v1/topics/{name}")

    async def cluster(self) -> Any:
        """`{"cluster_id", "controller", "brokers": [{"id", "url", "alive", "raft_voter"}]}`"""
        return await self._request("GET", "/v1/cluster")

    async def offset(self, topic: str, partition: int, timestamp: str | int = "latest") -> Any:
        """The partition's offset for "earliest", "latest" or a time in ms (None: none)."""
        doc = await self._request(
            "GET",
            f"/v1/topics/{topic}/partitions/{partition}/offsets",
            params={"timestamp": timestamp},
        )
        return doc["offset"]

    async def list_groups(self) -> list[str]:
        """Every group the cluster knows (`GET /v1/groups`: beyond the contract, Kafka's
        ListGroups; from the answering broker's metadata, so possibly a moment behind)."""
        doc = await self._request("GET", "/v1/groups")
        return list(doc["groups"])

    async def describe_group(self, group: str) -> Any:
        """`{"state", "generation", "members": [{"member_id", "assignment"}]}`"""
        return await self._request("GET", f"/v1/groups/{group}")

    async def group_offsets(self, group: str) -> list[Any]:
        """`[{"topic", "partition", "offset", "lag"}]`: the group's committed offsets."""
        doc = await self._request("GET", f"/v1/groups/{group}/offsets")
        return list(doc["offsets"])
