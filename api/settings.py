"""The cluster config: one TOML file read and validated once at start-up, then passed down.

Owns the names, defaults and ranges of every setting. Nothing else reads the file or the
environment for settings.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftka.metadata.errors import InvalidRequest

FSYNC_POLICIES = ("always", "batch", "never")
# Creating a topic that would put more partition replicas than this on any broker is
# refused (400); existing topics are never touched. Open files no longer bound it (the
# pool does), memory and start-up time do: docs/benchmarks.md, "Many partitions: file
# handles", measured them. Generous on purpose: the issue's 100,000 replicas per broker.
DEFAULT_MAX_PARTITIONS_PER_BROKER = 100_000
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-\[\]:]+):(?P<port>\d{1,5})$")


class ConfigError(InvalidRequest):
    """The cluster config is not usable; the message says which key and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Cluster-wide settings; defaults are Kafka's where Kafka has one."""

    broker_session_timeout_ms: int = 9000
    broker_heartbeat_interval_ms: int = 2000
    replica_lag_time_max_ms: int = 10000
    group_session_timeout_ms: int = 10000
    fsync: str = "batch"
    fsync_interval_ms: int = 50
    max_request_bytes: int = 16 * 1024 * 1024
    request_timeout_ms: int = 30000
    max_fetch_wait_ms: int = 30000
    log_retention_check_interval_ms: int = 300000
    default_segment_bytes: int = 1 << 30
    default_retention_ms: int = 7 * 24 * 3600 * 1000
    # Raft (pysyncobj) timing: elections after raft_election_timeout_min_ms..max_ms of silence.
    raft_election_timeout_min_ms: int = 300
    raft_election_timeout_max_ms: int = 900
    raft_heartbeat_interval_ms: int = 50
    raft_connection_retry_ms: int = 500
    # Room on the data disk that partition logs never take: the metadata journal,
    # checkpoints and index files still find it when logs have filled the disk. Half of it
    # is held in a preallocated file, released when the disk is full anyway.
    disk_reserve_bytes: int = 32 * 1024 * 1024
    # Client connections (api/http/connections.py): a cap, and how long one may sit idle or
    # take to send a request's headers and body. Kafka's names where Kafka has one.
    max_connections: int = 10000
    connections_max_idle_ms: int = 60000
    request_header_timeout_ms: int = 10000
    request_body_timeout_ms: int = 60000
    # Resource budgets (docs/operations.md, "Limits"). None: a share of the broker's open
    # files limit, after it raised the soft limit to the hard one (api/broker/open_files.py).
    max_open_files: int | None = None
    max_partitions_per_broker: int = DEFAULT_MAX_PARTITIONS_PER_BROKER

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0
            ):
                raise ConfigError(f"settings.{f.name} must be a positive integer, got {value!r}")
        if self.max_open_files is not None and (
            not isinstance(self.max_open_files, int)
            or isinstance(self.max_open_files, bool)
            or self.max_open_files <= 0
        ):
            raise ConfigError(
                f"settings.max_open_files must be a positive integer, got {self.max_open_files!r}"
            )
        if self.fsync not in FSYNC_POLICIES:
            raise ConfigError(f"settings.fsync must be one of {', '.join(FSYNC_POLICIES)}")
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms:
            raise ConfigError(
                "broker_heartbeat_interval_ms must be below broker_session_timeout_ms"
            )
        if self.raft_election_timeout_min_ms <= 3 * self.raft_heartbeat_interval_ms:
            # pysyncobj refuses to start otherwise: an election must outlast several heartbeats.
            raise ConfigError(
                "raft_election_timeout_min_ms must exceed 3 x raft_heartbeat_interval_ms"
            )
        if self.raft_election_timeout_max_ms <= self.raft_election_timeout_min_ms:
            raise ConfigError(
                "raft_election_timeout_max_ms must exceed raft_election_timeout_min_ms"
            )


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    broker_id: int
    http: str
    raft: str | None

    @property
    def url(self) -> str:
        return f"http://{self.http}"

    @property
    def http_host(self) -> str:
        return self.http.rsplit(":", 1)[0]

    @property
    def http_port(self) -> int:
        return int(self.http.rsplit(":", 1)[1])


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    cluster_id: str
    data_dir: Path
    brokers: tuple[BrokerAddress, ...]
    settings: Settings = field(default_factory=Settings)

    def broker(self, broker_id: int) -> BrokerAddress:
        for b in self.brokers:
            if b.broker_id == broker_id:
                return b
        raise ConfigError(f"broker {broker_id} is not in the cluster config")

    @property
    def voters(self) -> tuple[BrokerAddress, ...]:
        return tuple(b for b in self.brokers if b.raft is not None)

    def broker_data_dir(self, broker_id: int, override: Path | None = None) -> Path:
        return override if override is not None else self.data_dir / f"broker-{broker_id}"


def _check_address(value: Any, where: str) -> str:
    if not isinstance(value, str) or not (m := _HOST_PORT.match(value)):
        raise ConfigError(f"{where} must be 'host:port', got {value!r}")
    if not 0 < int(m["port"]) < 65536:
        raise ConfigError(f"{where} has an invalid port: {value!r}")
    return value


def parse_config(doc: dict[str, Any], base_dir: Path) -> ClusterConfig:
    """Validates a parsed TOML document; relative paths are relative to the file's folder."""
    unknown = set(doc) - {"cluster_id", "data_dir", "brokers", "settings"}
    if unknown:
        raise ConfigError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    cluster_id = doc.get("cluster_id", "local")
    if not isinstance(cluster_id, str) or not cluster_id:
        raise ConfigError("cluster_id must be a non-empty string")
    data_dir = Path(doc.get("data_dir", "./data"))
    if not data_dir.is_absolute():
        data_dir = (base_dir / data_dir).resolve()
    raw_brokers = doc.get("brokers")
    if not isinstance(raw_brokers, list) or not raw_brokers:
        raise ConfigError("the config needs at least one [[brokers]] entry")
    brokers: list[BrokerAddress] = []
    for i, raw in enumerate(raw_brokers):
        where = f"brokers[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        extra = set(raw) - {"id", "http", "raft"}
        if extra:
            raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(extra))}")
        broker_id = raw.get("id")
        if not isinstance(broker_id, int) or isinstance(broker_id, bool) or broker_id < 0:
            raise ConfigError(f"{where}.id must be a non-negative integer")
        http = _check_address(raw.get("http"), f"{where}.http")
        raft = raw.get("raft")
        if raft is not None:
            raft = _check_address(raft, f"{where}.raft")
        brokers.append(BrokerAddress(broker_id, http, raft))
    ids = [b.broker_id for b in brokers]
    if len(set(ids)) != len(ids):
        raise ConfigError("broker ids must be unique")
    if not any(b.raft for b in brokers):
        raise ConfigError("at least one broker needs a `raft` address (a metadata voter)")
    raw_settings = doc.get("settings", {})
    if not isinstance(raw_settings, dict):
        raise ConfigError("[settings] must be a table")
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(raw_settings) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    return ClusterConfig(cluster_id, data_dir, tuple(brokers), Settings(**raw_settings))


def load_config(path: Path) -> ClusterConfig:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(doc, path.parent)


def render_config(config: ClusterConfig) -> str:
    """The TOML text of a config (what `raftka dev` writes)."""
    lines = [f'cluster_id = "{config.cluster_id}"', f'data_dir = "{config.data_dir}"', ""]
    for b in config.brokers:
        lines += ["[[brokers]]", f"id = {b.broker_id}", f'http = "{b.http}"']
        if b.raft:
            lines.append(f'raft = "{b.raft}"')
        lines.append("")
    defaults = Settings()
    changed = {
        f.name: getattr(config.settings, f.name)
        for f in dataclasses.fields(Settings)
        if getattr(config.settings, f.name) != getattr(defaults, f.name)
    }
    if changed:
        lines.append("[settings]")
        for k, v in changed.items():
            lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
    return "\n".join(lines) + "\n"
