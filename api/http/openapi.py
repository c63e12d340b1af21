"""The OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json.

Written by hand from API.md, next to the routes it describes: tests/api/test_openapi.py
checks that every route the app serves is described and every described route served,
and schemathesis (tests/integration/test_fuzz.py) fuzzes a live broker from it. Data
only: no I/O.
"""

from __future__ import annotations

from typing import Any

from raftka.metadata.assignors import ASSIGNORS
from raftka.metadata.groups import (
    AUTO_OFFSET_RESETS,
    MAX_SESSION_TIMEOUT_MS,
    MIN_SESSION_TIMEOUT_MS,
)

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"content": {JSON: {"schema": schema}}}


def _ok(status: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer.update(_json(schema))
    return {
        status: answer,
        "default": {"description": "the contract's error", **_json(_ref("Error"))},
    }


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    tag: str,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: Schema, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


NAME = {"type": "string", "pattern": r"^(?!\.\.?$)[A-Za-z0-9._-]{1,249}$"}
TOPIC = _path_param("topic", NAME)
PARTITION = _path_param("partition", {"type": "integer", "minimum": 0})
GROUP = _path_param("group", NAME)
MEMBER = _path_param("member", {"type": "string", "minLength": 1})
INT64 = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
B64 = {
    "type": "string",
    "contentEncoding": "base64",
    "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
}
ANY: Schema = {}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Cluster": {
        "type": "object",
        "required": ["cluster_id", "controller", "brokers"],
        "properties": {
            "cluster_id": {"type": "string"},
            "controller": {"type": ["integer", "null"]},
            "brokers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "url", "alive", "raft_voter"],
                    "properties": {
                        "id": {"type": "integer"},
                        "url": {"type": "string"},
                        "alive": {"type": "boolean"},
                        "raft_voter": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "broker_id": {"type": "integer"}},
    },
    "NewTopic": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "partitions": {"type": "integer", "minimum": 1, "maximum": 10_000},
            "replication_factor": {"type": "integer", "minimum": 1},
            "config": {"type": ["object", "null"]},
        },
    },
    "Topic": {
        "type": "object",
        "required": ["name", "config", "partitions"],
        "properties": {
            "name": {"type": "string"},
            "config": {"type": "object"},
            "partitions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["partition", "leader", "replicas", "isr"],
                    "properties": {
                        "partition": {"type": "integer"},
                        "leader": {"type": ["integer", "null"]},
                        "leader_epoch": {"type": "integer"},
                        "replicas": {"type": "array", "items": {"type": "integer"}},
                        "isr": {"type": "array", "items": {"type": "integer"}},
                        "log_start_offset": {"type": ["integer", "null"]},
                        "high_watermark": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    },
    "Names": {"type": "object", "additionalProperties": {"type": "array"}},
    "ProduceRequest": {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "key": ANY,
                        "value": ANY,
                        "key_b64": B64,
                        "value_b64": B64,
                        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                        "partition": {"type": "integer", "minimum": 0},
                        "timestamp": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**62},
                    },
                    "oneOf": [{"required": ["value"]}, {"required": ["value_b64"]}],
                    "not": {"required": ["key", "key_b64"]},
                },
            },
            "producer": {
                "type": ["object", "null"],
                "required": ["id", "epoch", "sequence"],
                "additionalProperties": False,
                "properties": {
                    "id": INT64,
                    "epoch": {"type": "integer", "minimum": 0, "maximum": 2**15 - 1},
                    "sequence": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                },
            },
        },
    },
    # The topic endpoint's body: no `producer` (idempotence is per partition).
    "TopicProduceRequest": {
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "records": {"$ref": "#/components/schemas/ProduceRequest/properties/records"}
        },
    },
    "Offsets": {
        "type": "object",
        "required": ["offsets"],
        "properties": {
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["partition", "offset"],
                    "properties": {
                        "partition": {"type": "integer"},
                        "offset": {"type": ["integer", "null"]},
                    },
                },
            }
        },
    },
    "Records": {
        "type": "object",
        "required": ["records", "next_offset", "high_watermark", "log_start_offset"],
        "properties": {
            "records": {"type": "array", "items": {"type": "object"}},
            "next_offset": {"type": "integer"},
            "high_watermark": {"type": "integer"},
            "log_start_offset": {"type": "integer"},
        },
    },
    "Offset": {
        "type": "object",
        "required": ["offset"],
        # null: no record has that timestamp or a later one.
        "properties": {"offset": {"type": ["integer", "null"]}},
    },
    "Producer": {
        "type": "object",
        "required": ["id", "epoch"],
        "properties": {"id": {"type": "integer"}, "epoch": {"type": "integer"}},
    },
    "Join": {
        "type": "object",
        "required": ["topics"],
        "additionalProperties": False,
        "properties": {
            "topics": {"type": "array", "items": NAME, "minItems": 1},
            "session_timeout_ms": {
                "type": "integer",
                "minimum": MIN_SESSION_TIMEOUT_MS,
                "maximum": MAX_SESSION_TIMEOUT_MS,
            },
            "auto_commit": {"type": "boolean"},
            "auto_offset_reset": {"enum": list(AUTO_OFFSET_RESETS)},
            "assignor": {"enum": sorted(ASSIGNORS)},
        },
    },
    "Membership": {
        "type": "object",
        "required": ["generation", "assignment"],
        "properties": {
            "member_id": {"type": "string"},
            "generation": {"type": "integer"},
            "assignment": {"type": "object"},
            "rebalance": {"type": "boolean"},
        },
    },
    "Generation": {
        "type": "object",
        "required": ["generation"],
        "properties": {"generation": {"type": "integer", "minimum": 0}},
    },
    "Commit": {
        "type": "object",
        "required": ["member_id", "generation", "offsets"],
        "additionalProperties": False,
        "properties": {
            "member_id": {"type": "string", "minLength": 1},
            "generation": {"type": "integer", "minimum": 0},
            "offsets": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10_000,
                "items": {
                    "type": "object",
                    "required": ["topic", "partition", "offset"],
                    "properties": {
                        "topic": NAME,
                        "partition": {"type": "integer", "minimum": 0},
                        "offset": INT64,
                    },
                },
            },
        },
    },
    "GroupRecords": {
        "type": "object",
        "required": ["records"],
        "properties": {"records": {"type": "array", "items": {"type": "object"}}},
    },
    "GroupOffsets": {
        "type": "object",
        "required": ["offsets"],
        "properties": {"offsets": {"type": "array", "items": {"type": "object"}}},
    },
    "Group": {
        "type": "object",
        "required": ["state", "generation", "members"],
        "properties": {
            "state": {"type": "string"},
            "generation": {"type": "integer"},
            "members": {"type": "array", "items": {"type": "object"}},
        },
    },
}

BROKERS_ONLY = "Broker-to-broker: 403 for anything but a broker of this cluster."
FETCH_PARAMS = [
    _query("offset", INT64, required=True),
    _query("max_records", {"type": "integer", "minimum": 1, "maximum": 100_000}),
    _query("max_bytes", {"type": "integer", "minimum": 1, "maximum": 64 * 1024 * 1024}),
    _query("max_wait_ms", {"type": "integer", "minimum": 0, "maximum": 30_000}),
]
ACKS = _query("acks", {"type": "string", "enum": ["0", "1", "all"]})

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": _op(
            "200 when the broker serves and knows the metadata, 503 otherwise",
            {
                "200": {"description": "serving", **_json(_ref("Health"))},
                "503": {"description": "starting", **_json(_ref("Health"))},
                "default": {"description": "the contract's error", **_json(_ref("Error"))},
            },
            tag="cluster",
        )
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics",
            {
                "200": {"description": "text format", "content": {"text/plain": {}}},
                "default": {"description": "the contract's error", **_json(_ref("Error"))},
            },
            tag="cluster",
        )
    },
    "/openapi.json": {"get": _op("This description", _ok("200", "OpenAPI 3.1", {}), tag="cluster")},
    "/v1/cluster": {
        "get": _op(
            "Brokers and controller", _ok("200", "the cluster", _ref("Cluster")), tag="cluster"
        )
    },
    "/v1/producers": {
        "post": _op(
            "Allocate an idempotent producer id", _ok("200", "id", _ref("Producer")), tag="produce"
        )
    },
    "/v1/topics": {
        "post": _op(
            "Create a topic",
            _ok("201", "created", _ref("Topic")),
            body=_ref("NewTopic"),
            tag="topics",
        ),
        "get": _op("Topic names", _ok("200", "names", _ref("Names")), tag="topics"),
    },
    "/v1/topics/{topic}": {
        "get": _op(
            "Describe a topic", _ok("200", "the topic", _ref("Topic")), params=[TOPIC], tag="topics"
        ),
        "delete": _op("Delete a topic", _ok("204", "deleted"), params=[TOPIC], tag="topics"),
    },
    "/v1/topics/{topic}/records": {
        "post": _op(
            "Produce, the partitioner choosing partitions",
            _ok("200", "offsets", _ref("Offsets")),
            params=[TOPIC, ACKS],
            body=_ref("TopicProduceRequest"),
            tag="produce",
        )
    },
    "/v1/topics/{topic}/partitions/{partition}/records": {
        "post": _op(
            "Produce to one partition",
            _ok("200", "offsets", _ref("Offsets")),
            params=[TOPIC, PARTITION, ACKS],
            body=_ref("ProduceRequest"),
            tag="produce",
        ),
        "get": _op(
            "Fetch records below the high watermark",
            _ok("200", "records", _ref("Records")),
            params=[TOPIC, PARTITION, *FETCH_PARAMS],
            tag="fetch",
        ),
    },
    "/v1/topics/{topic}/partitions/{partition}/offsets": {
        "get": _op(
            "The offset for a timestamp (or earliest, latest)",
            _ok("200", "offset", _ref("Offset")),
            params=[
                TOPIC,
                PARTITION,
                _query(
                    "timestamp", {"type": "string", "pattern": "^(earliest|latest|[0-9]{1,18})$"}
                ),
            ],
            tag="fetch",
        )
    },
    "/v1/groups": {"get": _op("Group names", _ok("200", "names", _ref("Names")), tag="groups")},
    "/v1/groups/{group}": {
        "get": _op(
            "Describe a group", _ok("200", "the group", _ref("Group")), params=[GROUP], tag="groups"
        )
    },
    "/v1/groups/{group}/members": {
        "post": _op(
            "Join a group",
            _ok("200", "membership", _ref("Membership")),
            params=[GROUP],
            body=_ref("Join"),
            tag="groups",
        )
    },
    "/v1/groups/{group}/members/{member}": {
        "delete": _op("Leave a group", _ok("204", "left"), params=[GROUP, MEMBER], tag="groups")
    },
    "/v1/groups/{group}/members/{member}/heartbeat": {
        "post": _op(
            "Heartbeat",
            _ok("200", "membership", _ref("Membership")),
            params=[GROUP, MEMBER],
            body=_ref("Generation"),
            tag="groups",
        )
    },
    "/v1/groups/{group}/members/{member}/records": {
        "get": _op(
            "Records from the member's partitions",
            _ok("200", "records", _ref("GroupRecords")),
            params=[
                GROUP,
                MEMBER,
                _query("max_records", {"type": "integer", "minimum": 1, "maximum": 100_000}),
                _query("max_wait_ms", {"type": "integer", "minimum": 0, "maximum": 30_000}),
            ],
            tag="groups",
        )
    },
    "/v1/groups/{group}/offsets": {
        "post": _op(
            "Commit offsets",
            _ok("204", "committed"),
            params=[GROUP],
            body=_ref("Commit"),
            tag="groups",
        ),
        "get": _op(
            "Committed offsets with lag",
            _ok("200", "offsets", _ref("GroupOffsets")),
            params=[GROUP],
            tag="groups",
        ),
    },
    "/internal/replica/fetch": {
        "post": _op(BROKERS_ONLY, _ok("200", "replica data", None), tag="internal")
    },
    "/internal/brokers/{broker_id}/session": {
        "post": _op(
            BROKERS_ONLY,
            _ok("200", "held open"),
            params=[_path_param("broker_id", {"type": "integer", "minimum": 0})],
            tag="internal",
        )
    },
    "/internal/topics/{topic}/offsets": {
        "get": _op(
            BROKERS_ONLY, _ok("200", "offsets", {"type": "object"}), params=[TOPIC], tag="internal"
        )
    },
    "/internal/metadata": {
        "get": _op(BROKERS_ONLY, _ok("200", "digest", {"type": "object"}), tag="internal")
    },
}

BEARER_SCHEME = {"type": "http", "scheme": "bearer"}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "raftka",
            "version": "1",
            "description": "A Kafka-style streaming platform over HTTP/JSON (API.md).",
        },
        "paths": PATHS,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"token": BEARER_SCHEME}},
        # A token only when the cluster has [[users]] (docs/security.md): optional here.
        "security": [{}, {"token": []}],
    }
