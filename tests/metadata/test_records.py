"""Topic names, topic configs and the command text: what is accepted and what is not."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from raftka.metadata.commands import (
    AlterPartition,
    CreateTopic,
    FenceBroker,
    decode_command,
    encode_command,
)
from raftka.metadata.model import InvalidConfig, MetadataState, TopicConfig, validate_topic_name

VALID_NAMES = ["a", "orders", "Orders.v2_final-1", "...", "a" * 249, "-", "_"]
INVALID_NAMES = ["", ".", "..", "a" * 250, "has space", "slash/name", "ümlaut", "colon:name"]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_topic_names_of_1_to_249_allowed_characters_are_valid(name: str) -> None:
    assert validate_topic_name(name) is None


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_other_topic_names_are_invalid_with_a_reason(name: str) -> None:
    assert validate_topic_name(name)


def test_an_empty_config_takes_kafkas_defaults() -> None:
    config = TopicConfig.from_json({})
    assert config == TopicConfig()
    assert config.retention_ms == 604_800_000
    assert config.segment_bytes == 1_073_741_824
    assert config.min_insync_replicas == 1
    assert config.unclean_leader_election is False


def test_config_round_trips_through_json() -> None:
    config = TopicConfig(2, None, 10_000, 4096, True)
    assert TopicConfig.from_json(orjson.loads(orjson.dumps(config.to_json()))) == config


def test_kafkas_minus_one_means_unlimited_retention() -> None:
    config = TopicConfig.from_json({"retention_ms": -1, "retention_bytes": -1})
    assert config.retention_ms is None
    assert config.retention_bytes is None


BAD_CONFIGS: dict[str, Any] = {
    "not_an_object": [1],
    "unknown_key": {"cleanup_policy": "compact"},
    "min_insync_replicas_zero": {"min_insync_replicas": 0},
    "min_insync_replicas_bool": {"min_insync_replicas": True},
    "min_insync_replicas_string": {"min_insync_replicas": "2"},
    "retention_ms_zero": {"retention_ms": 0},
    "retention_ms_float": {"retention_ms": 1.5},
    "retention_bytes_below_minus_one": {"retention_bytes": -2},
    "segment_bytes_too_small": {"segment_bytes": 13},
    "segment_bytes_above_int32": {"segment_bytes": 2**31},
    "unclean_leader_election_not_bool": {"unclean_leader_election": "yes"},
}


@pytest.mark.parametrize("raw", BAD_CONFIGS.values(), ids=BAD_CONFIGS)
def test_invalid_configs_raise_invalid_config_with_a_message(raw: Any) -> None:
    with pytest.raises(InvalidConfig) as caught:
        TopicConfig.from_json(raw)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value)


def test_a_config_cannot_be_built_invalid_directly() -> None:
    with pytest.raises(InvalidConfig):
        TopicConfig(min_insync_replicas=0)


def test_commands_are_compact_json_text_with_a_type() -> None:
    text = encode_command(FenceBroker(3, command_id="c-1"))
    assert text == '{"type":"FenceBroker","broker_id":3,"command_id":"c-1"}'
    assert decode_command(text) == FenceBroker(3, command_id="c-1")


def test_create_topic_round_trips_with_its_config_and_assignment() -> None:
    command = CreateTopic("t", "id", TopicConfig(retention_ms=None), ((1, 2), (2, 1)), "c")
    assert decode_command(encode_command(command)) == command


def test_a_missing_command_id_means_none() -> None:
    assert decode_command('{"type":"FenceBroker","broker_id":3}') == FenceBroker(3)


MALFORMED = {
    "not_json": "{",
    "not_an_object": "[1]",
    "no_type": '{"broker_id":1}',
    "unknown_type": '{"type":"Nope"}',
    "type_not_a_string": '{"type":["FenceBroker"],"broker_id":1}',
    "missing_field": '{"type":"FenceBroker"}',
    "extra_field": '{"type":"FenceBroker","broker_id":1,"x":2}',
    "bool_for_int": '{"type":"FenceBroker","broker_id":true}',
    "string_for_int": '{"type":"FenceBroker","broker_id":"1"}',
    "float_for_int": '{"type":"FenceBroker","broker_id":1.0}',
    "null_command_id": '{"type":"FenceBroker","broker_id":1,"command_id":null}',
    "isr_not_a_list": encode_command(AlterPartition("t", 0, 1, 0, 0, (1,))).replace(
        '"isr":[1]', '"isr":1'
    ),
    "bad_config": '{"type":"CreateTopic","name":"t","topic_id":"i","config":{"x":1},'
    '"assignment":[[1]]}',
    "assignment_not_nested": '{"type":"CreateTopic","name":"t","topic_id":"i","config":{},'
    '"assignment":[1]}',
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED)
def test_malformed_command_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        decode_command(text)


def test_a_malformed_snapshot_raises_value_error() -> None:
    snapshot = MetadataState.empty().to_snapshot()
    with pytest.raises(ValueError):
        MetadataState.from_snapshot({**snapshot, "version": 99})
    with pytest.raises(ValueError):
        MetadataState.from_snapshot({"version": 1})
