"""Topic names, topic configs and the command text: what is accepted and what is not."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson
import pytest

from raftka.metadata.commands import (
    COMPRESS_ABOVE_TEXT_BYTES,
    COMPRESSED_PREFIX,
    MAX_COMMAND_TEXT_CHARS,
    MAX_DECODED_COMMAND_BYTES,
    AlterPartition,
    CommandTooLarge,
    CreateTopic,
    FenceBroker,
    RegisterBroker,
    decode_command,
    encode_command,
)
from raftka.metadata.model import (
    BrokerRecord,
    InvalidConfig,
    MetadataState,
    TopicConfig,
    validate_topic_name,
)
from raftka.metadata.placement import assign_replicas

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


def test_a_register_broker_from_an_old_journal_without_clean_shutdown_means_clean() -> None:
    text = '{"type":"RegisterBroker","broker_id":1,"url":"http://b1","incarnation_id":"i","raft_voter":true,"command_id":"c"}'
    assert decode_command(text) == RegisterBroker(
        1, "http://b1", "i", True, "c", clean_shutdown=True
    )


def test_register_broker_round_trips_an_unclean_shutdown() -> None:
    command = RegisterBroker(1, "http://b1", "i", True, "c", clean_shutdown=False)
    assert decode_command(encode_command(command)) == command


def test_a_broker_from_an_old_snapshot_without_clean_shutdown_means_clean() -> None:
    old = {"broker_id": 1, "url": "http://b1", "incarnation_id": "i", "raft_voter": True}
    assert BrokerRecord.from_json({**old, "fenced": False}).clean_shutdown is True
    unclean = BrokerRecord(1, "http://b1", "i", True, fenced=False, clean_shutdown=False)
    assert BrokerRecord.from_json(orjson.loads(orjson.dumps(unclean.to_json()))) == unclean


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
    "clean_shutdown_not_bool": '{"type":"RegisterBroker","broker_id":1,"url":"u",'
    '"incarnation_id":"i","raft_voter":true,"clean_shutdown":0}',
    "missing_required_field_of_register_broker": '{"type":"RegisterBroker","broker_id":1,'
    '"url":"u","incarnation_id":"i","clean_shutdown":true}',
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


def big_topic(brokers: int, partitions: int, replication_factor: int = 3) -> CreateTopic:
    """A CreateTopic as plan_create_topic builds it, with ids as long as the route's."""
    assignment = assign_replicas(list(range(1, brokers + 1)), partitions, replication_factor, 0)
    return CreateTopic("x" * 249, "f" * 32, TopicConfig(), assignment, "c" * 32)


def plain_json(command: CreateTopic) -> str:
    """The uncompressed text encode_command wrote before compression existed."""
    fields = {
        "type": "CreateTopic",
        "name": command.name,
        "topic_id": command.topic_id,
        "config": command.config.to_json(),
        "assignment": command.assignment,
        "command_id": command.command_id,
    }
    return orjson.dumps(fields).decode()


@pytest.mark.parametrize(
    ("brokers", "partitions"),
    [(3, 8000), (3, 10_000), (30, 10_000), (3, 100_000), (30, 100_000)],
    ids=[
        "3-brokers-8000",
        "3-brokers-10000",
        "30-brokers-10000",
        "3-brokers-100000",
        "30-brokers-100000",
    ],
)
def test_a_large_create_topic_is_compressed_into_one_entry_and_decodes_back_equal(
    brokers: int, partitions: int
) -> None:
    command = big_topic(brokers, partitions)
    assert len(plain_json(command)) > MAX_COMMAND_TEXT_CHARS
    text = encode_command(command)
    assert text.startswith(COMPRESSED_PREFIX)
    assert len(text) <= MAX_COMMAND_TEXT_CHARS
    assert text.isascii()
    assert decode_command(text) == command


def test_text_up_to_the_threshold_stays_plain_json_and_longer_text_is_compressed() -> None:
    short = CreateTopic("t", "id", TopicConfig(), ((1, 2, 3),) * 50)
    assert len(plain_json(short)) <= COMPRESS_ABOVE_TEXT_BYTES
    assert encode_command(short) == plain_json(short)
    longer = CreateTopic("t", "id", TopicConfig(), ((1, 2, 3),) * 200)
    assert len(plain_json(longer)) > COMPRESS_ABOVE_TEXT_BYTES
    assert encode_command(longer).startswith(COMPRESSED_PREFIX)


def test_plain_json_longer_than_the_threshold_from_an_old_journal_still_decodes() -> None:
    command = big_topic(30, 10_000)
    assert decode_command(plain_json(command)) == command


def test_a_topic_that_cannot_fit_one_entry_even_compressed_raises_command_too_large() -> None:
    # 100 brokers: placement repeats only every 9,900 partitions, beyond zlib's window.
    command = big_topic(100, 100_000)
    with pytest.raises(CommandTooLarge) as caught:
        encode_command(command)
    assert isinstance(caught.value, ValueError)
    assert caught.value.size > caught.value.limit == MAX_COMMAND_TEXT_CHARS
    assert "CreateTopic" in str(caught.value)


def compressed(data: bytes) -> str:
    return COMPRESSED_PREFIX + base64.b64encode(zlib.compress(data)).decode()


GOOD_JSON = b'{"type":"FenceBroker","broker_id":3}'
MALFORMED_COMPRESSED = {
    "empty": COMPRESSED_PREFIX,
    "not_base64": COMPRESSED_PREFIX + "not base64!",
    "base64_missing_padding": compressed(GOOD_JSON)[:-1],
    "non_ascii_base64": COMPRESSED_PREFIX + "ü" * 8,
    "not_zlib": COMPRESSED_PREFIX + base64.b64encode(GOOD_JSON).decode(),
    "truncated_zlib": COMPRESSED_PREFIX + base64.b64encode(zlib.compress(GOOD_JSON)[:-6]).decode(),
    "bytes_after_the_zlib_stream": COMPRESSED_PREFIX
    + base64.b64encode(zlib.compress(GOOD_JSON) + b"extra").decode(),
    "not_utf8_inside": compressed(b'{"type":"\xff"}'),
    "not_json_inside": compressed(b"{"),
    "compressed_twice": compressed(compressed(GOOD_JSON).encode()),
    "bad_field_inside": compressed(b'{"type":"FenceBroker","broker_id":"3"}'),
}


@pytest.mark.parametrize("text", MALFORMED_COMPRESSED.values(), ids=MALFORMED_COMPRESSED)
def test_malformed_compressed_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        decode_command(text)


def test_compressed_text_is_only_trusted_as_the_bytes_it_inflates_to() -> None:
    assert decode_command(compressed(GOOD_JSON)) == FenceBroker(3)


def test_compressed_text_inflating_past_the_bound_is_refused() -> None:
    # ~16 KB of zlib that inflates to one byte more than the bound: a bomb in miniature.
    bomb = compressed(b'{"type":"FenceBroker","broker_id":3}' + b" " * MAX_DECODED_COMMAND_BYTES)
    assert len(bomb) < MAX_COMMAND_TEXT_CHARS
    with pytest.raises(ValueError, match="inflates past"):
        decode_command(bomb)


def test_plain_text_longer_than_the_decode_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than"):
        decode_command(" " * (MAX_DECODED_COMMAND_BYTES + 1))


def test_a_malformed_snapshot_raises_value_error() -> None:
    snapshot = MetadataState.empty().to_snapshot()
    with pytest.raises(ValueError):
        MetadataState.from_snapshot({**snapshot, "version": 99})
    with pytest.raises(ValueError):
        MetadataState.from_snapshot({"version": 1})
