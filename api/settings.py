"""The cluster config: one TOML file read and validated once at start-up, then passed down.

Owns the names, defaults and ranges of every setting. Nothing else reads the file or the
environment for settings.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftka.api.acl import AclConfigError, User, parse_users
from raftka.metadata.errors import InvalidRequest

FSYNC_POLICIES = ("always", "batch", "never")
# Creating a topic that would put more partition replicas than this on any broker is
# refused (400); existing topics are never touched. Open files no longer bound it (the
# pool does), memory and start-up time do: docs/benchmarks.md, "Many partitions: file
# handles", measured them. Generous on purpose: the issue's 100,000 replicas per broker.
DEFAULT_MAX_PARTITIONS_PER_BROKER = 100_000
# A cluster secret shorter than this is refused (`raftka dev` makes 43 characters).
MIN_CLUSTER_SECRET_CHARS = 16
SECURITY_KEYS = frozenset(
    {"cluster_secret", "cluster_secret_file", "tls_cert", "tls_key", "tls_client_ca", "users"}
)
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
    # Kafka's auto.create.topics.enable: a Kafka client's Metadata request for a topic
    # that does not exist creates it (1 partition, replication factor 1), as Kafka does
    # by default. The HTTP API never creates topics implicitly (404 UNKNOWN_TOPIC).
    auto_create_topics_enable: bool = True
    # Requests in flight (api/http/request_budget.py): the bytes of their bodies, and the
    # long-polls one client (a user, or an address without users) may hold. A consumer
    # reading N partitions without a group long-polls N at once.
    max_in_flight_request_bytes: int = 256 * 1024 * 1024
    max_long_polls_per_client: int = 1000

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
        if not isinstance(self.auto_create_topics_enable, bool):
            raise ConfigError("settings.auto_create_topics_enable must be true or false")
        if self.max_in_flight_request_bytes < self.max_request_bytes:
            raise ConfigError("max_in_flight_request_bytes must be at least max_request_bytes")
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
class Security:
    """docs/security.md: the cluster secret (brokers among themselves), TLS, and users."""

    cluster_secret: str | None = None
    cluster_secret_file: Path | None = None  # where the secret was read from, if a file
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    users: tuple[User, ...] = ()

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    broker_id: int
    http: str
    raft: str | None
    kafka: str | None = None  # the Kafka protocol listener (docs/kafka-protocol.md)
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.http}"

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
    security: Security = field(default_factory=Security)

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


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _path(value: Any, where: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a file path")
    path = Path(value)
    path = path if path.is_absolute() else (base_dir / path).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}: no such file: {path}")
    return path


def parse_security(doc: dict[str, Any], base_dir: Path, brokers: list[BrokerAddress]) -> Security:
    secret = doc.get("cluster_secret")
    if "cluster_secret_file" in doc:
        if secret is not None:
            raise ConfigError("give cluster_secret or cluster_secret_file, not both")
        secret_path = _path(doc["cluster_secret_file"], "cluster_secret_file", base_dir)
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cluster_secret_file {secret_path}: {exc}") from None
    if secret is not None and (
        not isinstance(secret, str) or len(secret) < MIN_CLUSTER_SECRET_CHARS
    ):
        raise ConfigError(f"cluster_secret must be at least {MIN_CLUSTER_SECRET_CHARS} characters")
    exposed = [a for b in brokers for a in (b.http, b.raft) if a is not None and not is_loopback(a)]
    if exposed and secret is None:
        raise ConfigError(
            f"a broker listens off loopback ({exposed[0]}): the config needs a cluster_secret "
            "(or cluster_secret_file); docs/security.md says how to make one"
        )
    tls = {
        k: _path(doc[k], k, base_dir) for k in ("tls_cert", "tls_key", "tls_client_ca") if k in doc
    }
    if ("tls_cert" in tls) != ("tls_key" in tls):
        raise ConfigError("tls_cert and tls_key go together")
    if "tls_client_ca" in tls and "tls_cert" not in tls:
        raise ConfigError("tls_client_ca needs tls_cert and tls_key")
    try:
        users = parse_users(doc.get("users", []))
    except AclConfigError as exc:
        raise ConfigError(exc.message) from None
    if users and secret is None:
        # Tokens would guard nothing while the Raft port takes any pickled frame.
        raise ConfigError("[[users]] need a cluster_secret (or cluster_secret_file) too")
    return Security(
        cluster_secret=secret,
        cluster_secret_file=secret_path if "cluster_secret_file" in doc else None,
        tls_cert=tls.get("tls_cert"),
        tls_key=tls.get("tls_key"),
        tls_client_ca=tls.get("tls_client_ca"),
        users=users,
    )


def parse_config(doc: dict[str, Any], base_dir: Path) -> ClusterConfig:
    """Validates a parsed TOML document; relative paths are relative to the file's folder."""
    unknown = set(doc) - {"cluster_id", "data_dir", "brokers", "settings"} - SECURITY_KEYS
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
        extra = set(raw) - {"id", "http", "raft", "kafka"}
        if extra:
            raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(extra))}")
        broker_id = raw.get("id")
        if not isinstance(broker_id, int) or isinstance(broker_id, bool) or broker_id < 0:
            raise ConfigError(f"{where}.id must be a non-negative integer")
        http = _check_address(raw.get("http"), f"{where}.http")
        raft = raw.get("raft")
        if raft is not None:
            raft = _check_address(raft, f"{where}.raft")
        kafka = raw.get("kafka")
        if kafka is not None:
            kafka = _check_address(kafka, f"{where}.kafka")
        brokers.append(BrokerAddress(broker_id, http, raft, kafka))
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
    security = parse_security(doc, base_dir, brokers)
    if security.tls:
        brokers = [dataclasses.replace(b, scheme="https") for b in brokers]
    return ClusterConfig(cluster_id, data_dir, tuple(brokers), Settings(**raw_settings), security)


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
    lines = [f'cluster_id = "{config.cluster_id}"', f'data_dir = "{config.data_dir}"']
    sec = config.security
    if sec.cluster_secret_file is not None:
        lines.append(f'cluster_secret_file = "{sec.cluster_secret_file}"')
    elif sec.cluster_secret is not None:
        lines.append(f'cluster_secret = "{sec.cluster_secret}"')
    for key in ("tls_cert", "tls_key", "tls_client_ca"):
        value = getattr(sec, key)
        if value is not None:
            lines.append(f'{key} = "{value}"')
    lines.append("")
    for b in config.brokers:
        lines += ["[[brokers]]", f"id = {b.broker_id}", f'http = "{b.http}"']
        if b.raft:
            lines.append(f'raft = "{b.raft}"')
        if b.kafka:
            lines.append(f'kafka = "{b.kafka}"')
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
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            else:
                lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
        lines.append("")
    for user in sec.users:
        lines += ["[[users]]", f'name = "{user.name}"', f'token_hash = "{user.token_hash}"']
        acls = ", ".join(_acl_toml(a.to_json()) for a in user.acls)
        lines += [f"acls = [{acls}]", ""]
    return "\n".join(lines) + "\n"


def _acl_toml(acl: dict[str, list[str]]) -> str:
    fields = ", ".join(
        f"{k} = [{', '.join(chr(34) + v + chr(34) for v in values)}]" for k, values in acl.items()
    )
    return "{ " + fields + " }"
