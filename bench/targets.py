"""Where the load goes: each partition of a topic and the broker that leads it, read from
`GET /v1/topics/{topic}` and `GET /v1/cluster` through the client, as a client that wants
the shortest path does (API.md section 2). Also builds the raw requests the load client
sends, once, before any timing starts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from raftka.bench.errors import BenchError
from raftka.client.aio import Admin

ACKS = ("0", "1", "all")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One broker's HTTP address, and how to talk to it (TLS, a bearer token)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    token: str | None = None

    def head(self, method: str, path: str, extra: str = "") -> str:
        """The request line and headers, up to and including the blank line."""
        auth = "" if self.token is None else f"Authorization: Bearer {self.token}\r\n"
        return f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{auth}{extra}\r\n"


@dataclass(frozen=True, slots=True)
class Target:
    """A partition and the broker the load sends its requests to (its leader, or any
    broker when measuring forwarding)."""

    endpoint: Endpoint
    topic: str
    partition: int


def endpoint_of(url: str, *, cacert: str | None = None, token: str | None = None) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"a broker URL looks like http://host:port, got {url!r}")
    tls = None
    if parts.scheme == "https":
        tls = ssl.create_default_context(cafile=cacert)
    return Endpoint(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme], tls, token)


def produce_request(target: Target, acks: str, body: bytes) -> bytes:
    path = f"/v1/topics/{target.topic}/partitions/{target.partition}/records?acks={acks}"
    extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return target.endpoint.head("POST", path, extra).encode() + body


def fetch_request(target: Target, offset: int, max_bytes: int, max_records: int) -> bytes:
    path = (
        f"/v1/topics/{target.topic}/partitions/{target.partition}/records"
        f"?offset={offset}&max_bytes={max_bytes}&max_records={max_records}"
    )
    return target.endpoint.head("GET", path).encode()


@dataclass(frozen=True, slots=True)
class PartitionView:
    partition: int
    leader_url: str
    log_start_offset: int
    high_watermark: int


async def describe(
    bootstrap: str, topic: str, *, token: str | None = None, cacert: str | None = None
) -> list[PartitionView]:
    """Every partition of `topic` with its leader's URL; raises UnknownTopic, or BenchError
    when a partition has no leader right now."""
    async with Admin(bootstrap, token=token, cacert=cacert) as admin:
        doc: Any = await admin.describe_topic(topic)
        urls = {b["id"]: b["url"] for b in (await admin.cluster())["brokers"]}
    views = []
    for p in sorted(doc["partitions"], key=lambda p: p["partition"]):
        if p["leader"] not in urls:
            raise BenchError(f"{topic}-{p['partition']} has no leader right now; try again")
        views.append(
            PartitionView(
                p["partition"], urls[p["leader"]], p["log_start_offset"], p["high_watermark"]
            )
        )
    return views


def leader_targets(
    topic: str,
    views: list[PartitionView],
    *,
    via: str | None = None,
    token: str | None = None,
    cacert: str | None = None,
) -> list[Target]:
    """One target per partition, at its leader, or at `via` for every partition."""
    return [
        Target(endpoint_of(via or v.leader_url, cacert=cacert, token=token), topic, v.partition)
        for v in views
    ]
