"""The cluster config: defaults, validation with clear messages, and a round trip."""

import tomllib
from pathlib import Path

import pytest

from raftka.api.settings import ConfigError, Settings, load_config, parse_config, render_config

ONE_BROKER = {"brokers": [{"id": 1, "http": "127.0.0.1:9091", "raft": "127.0.0.1:19091"}]}


def test_defaults_are_kafkas_and_the_contracts() -> None:
    config = parse_config(ONE_BROKER, Path("/base"))
    assert config.cluster_id == "local"
    assert config.data_dir == Path("/base/data")
    assert config.settings == Settings()
    assert config.settings.broker_session_timeout_ms == 9000
    assert config.settings.broker_heartbeat_interval_ms == 2000
    assert config.settings.fsync == "batch"
    assert config.settings.max_request_bytes == 16 * 1024 * 1024


def test_brokers_without_raft_are_observers() -> None:
    doc = {"brokers": [*ONE_BROKER["brokers"], {"id": 2, "http": "127.0.0.1:9092"}]}
    config = parse_config(doc, Path("."))
    assert [b.broker_id for b in config.voters] == [1]
    assert config.broker(2).raft is None
    assert config.broker(2).url == "http://127.0.0.1:9092"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "at least one [[brokers]]"),
        ({"brokers": []}, "at least one [[brokers]]"),
        ({"brokers": [{"id": 1, "http": "127.0.0.1:9091"}]}, "raft"),
        ({**ONE_BROKER, "extra": 1}, "unknown top-level keys: extra"),
        ({"brokers": [{"id": "1", "http": "h:1", "raft": "h:2"}]}, "brokers[0].id"),
        ({"brokers": [{"id": 1, "http": "nohostport", "raft": "h:2"}]}, "brokers[0].http"),
        ({"brokers": [{"id": 1, "http": "h:70000", "raft": "h:2"}]}, "invalid port"),
        ({"brokers": [{"id": 1, "http": "h:1", "raft": "h:2", "x": 1}]}, "unknown keys: x"),
        (
            {"brokers": [{"id": 1, "http": "h:1", "raft": "h:2"}, {"id": 1, "http": "h:3"}]},
            "unique",
        ),
        ({**ONE_BROKER, "settings": {"fsync": "sometimes"}}, "settings.fsync"),
        ({**ONE_BROKER, "settings": {"fsync_interval_ms": 0}}, "positive integer"),
        ({**ONE_BROKER, "settings": {"fsync_interval_ms": True}}, "positive integer"),
        ({**ONE_BROKER, "settings": {"typo_ms": 1}}, "unknown settings: typo_ms"),
        ({**ONE_BROKER, "settings": {"auto_create_topics_enable": 1}}, "true or false"),
        ({"brokers": [{"id": 1, "http": "h:1", "raft": "h:2", "kafka": "h"}]}, "brokers[0].kafka"),
        (
            {**ONE_BROKER, "settings": {"broker_heartbeat_interval_ms": 9000}},
            "below broker_session_timeout_ms",
        ),
        (
            {**ONE_BROKER, "settings": {"raft_election_timeout_min_ms": 100}},
            "3 x raft_heartbeat_interval_ms",
        ),
    ],
)
def test_a_bad_config_is_refused_with_a_message_naming_the_problem(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(doc, Path("."))


def test_render_then_parse_gives_the_same_config(tmp_path: Path) -> None:
    doc = {
        "cluster_id": "c",
        "data_dir": str(tmp_path / "d"),
        "brokers": [
            *ONE_BROKER["brokers"],
            {"id": 7, "http": "127.0.0.1:9097", "kafka": "127.0.0.1:9197"},
        ],
        "settings": {
            "fsync": "always",
            "broker_session_timeout_ms": 3000,
            "auto_create_topics_enable": False,
        },
    }
    config = parse_config(doc, tmp_path)
    assert parse_config(tomllib.loads(render_config(config)), tmp_path) == config


def test_load_config_reports_a_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("brokers = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
