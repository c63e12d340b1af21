"""The security keys of the cluster config, and the broker-to-broker proof."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from raftka.api.acl import Operation
from raftka.api.broker_auth import MAX_CLOCK_SKEW_S, BrokerAuth
from raftka.api.settings import ConfigError, parse_config, render_config
from raftka.api.tokens import hash_token

SECRET = "0123456789abcdef-secret"


def _doc(http: str = "127.0.0.1:9091", raft: str = "127.0.0.1:19091", **top: Any) -> dict:
    return {"brokers": [{"id": 1, "http": http, "raft": raft}], **top}


@pytest.mark.parametrize(
    ("http", "raft"),
    [("0.0.0.0:9091", "127.0.0.1:19091"), ("127.0.0.1:9091", "10.0.0.5:19091"), ("h:1", None)],
)
def test_a_broker_off_loopback_needs_a_cluster_secret(
    tmp_path: Path, http: str, raft: str | None
) -> None:
    doc = _doc(http, raft or "127.0.0.1:19091")
    with pytest.raises(ConfigError, match="cluster_secret"):
        parse_config(doc, tmp_path)
    assert parse_config({**doc, "cluster_secret": SECRET}, tmp_path).security.cluster_secret


@pytest.mark.parametrize("loopback", ["127.0.0.1:9091", "localhost:9091", "[::1]:9091"])
def test_a_loopback_cluster_may_run_without_a_secret(tmp_path: Path, loopback: str) -> None:
    assert parse_config(_doc(loopback), tmp_path).security.cluster_secret is None


def test_the_secret_may_live_in_a_file_and_survives_a_render(tmp_path: Path) -> None:
    (tmp_path / "s").write_text(SECRET + "\n")
    config = parse_config(_doc(cluster_secret_file="s"), tmp_path)
    assert config.security.cluster_secret == SECRET
    again = parse_config(tomllib.loads(render_config(config)), tmp_path)
    assert again.security.cluster_secret == SECRET


@pytest.mark.parametrize(
    ("top", "problem"),
    [
        ({"cluster_secret": "short"}, "at least"),
        ({"cluster_secret": SECRET, "cluster_secret_file": "s"}, "not both"),
        ({"cluster_secret_file": "missing"}, "no such file"),
        ({"tls_cert": "c"}, "no such file"),
    ],
)
def test_bad_security_keys_are_refused_with_a_clear_message(
    tmp_path: Path, top: dict, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(_doc(**top), tmp_path)


def test_tls_cert_and_key_go_together(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("x")
    with pytest.raises(ConfigError, match="together"):
        parse_config(_doc(tls_cert="c"), tmp_path)
    config = parse_config(_doc(tls_cert="c", tls_key="c"), tmp_path)
    assert config.brokers[0].url == "https://127.0.0.1:9091"


def test_a_broker_proof_holds_for_its_method_and_path_within_the_clock_skew() -> None:
    now = [1_000_000.0]
    auth = BrokerAuth(SECRET, clock=lambda: now[0])
    header = auth.headers("POST", "/internal/replica/fetch")["X-Raftka-Broker-Auth"]
    assert auth.verify("POST", "/internal/replica/fetch", header)
    assert not auth.verify("GET", "/internal/replica/fetch", header)
    assert not auth.verify("POST", "/internal/metadata", header)
    assert not BrokerAuth("another-secret-0123").verify("POST", "/internal/replica/fetch", header)
    assert not auth.verify("POST", "/internal/replica/fetch", header[:-1] + "0")
    for garbage in ("", ":", "x:y", "99999999999999999999:ab"):
        assert not auth.verify("POST", "/internal/replica/fetch", garbage)
    now[0] += MAX_CLOCK_SKEW_S + 1
    assert not auth.verify("POST", "/internal/replica/fetch", header)


def test_without_a_secret_nothing_is_proven() -> None:
    auth = BrokerAuth(None)
    assert auth.headers("GET", "/internal/metadata") == {}
    assert not auth.verify("GET", "/internal/metadata", "1:abc")


def test_users_and_their_acls_survive_a_render(tmp_path: Path) -> None:
    token_hash = hash_token("a-token-of-16-chars")
    doc = _doc(
        cluster_secret=SECRET,
        users=[
            {
                "name": "app",
                "token_hash": token_hash,
                "acls": [{"operations": ["produce"], "topics": ["orders.*"], "groups": ["g"]}],
            }
        ],
    )
    config = parse_config(doc, tmp_path)
    again = parse_config(tomllib.loads(render_config(config)), tmp_path)
    assert again.security.users == config.security.users
    user = again.security.users[0]
    assert user.may(Operation.PRODUCE, "orders.eu") and not user.may(Operation.PRODUCE, "ordersx")
    assert not user.may(Operation.CONSUME, "orders.eu") and not user.may_use_group("g")


@pytest.mark.parametrize(
    ("users", "problem"),
    [
        ([{"name": "a", "token_hash": "plain"}], "token_hash"),
        ([{"name": "a", "token_hash": "x", "extra": 1}], "unknown keys"),
        ([{"name": "", "token_hash": "x"}], "name"),
        ("nope", "array of tables"),
    ],
)
def test_bad_users_are_refused(tmp_path: Path, users: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(_doc(cluster_secret=SECRET, users=users), tmp_path)


def test_users_need_a_cluster_secret(tmp_path: Path) -> None:
    users = [{"name": "a", "token_hash": hash_token("a-token-of-16-chars")}]
    with pytest.raises(ConfigError, match="need a cluster_secret"):
        parse_config(_doc(users=users), tmp_path)


@pytest.mark.parametrize(
    "acl",
    [
        {"operations": ["write"], "topics": ["t"]},
        {"operations": [], "topics": ["t"]},
        {"operations": ["produce"], "topics": ["a*b"]},
        {"operations": ["produce"], "topics": "t"},
    ],
)
def test_bad_acls_are_refused(tmp_path: Path, acl: dict) -> None:
    users = [{"name": "a", "token_hash": hash_token("a-token-of-16-chars"), "acls": [acl]}]
    with pytest.raises(ConfigError):
        parse_config(_doc(cluster_secret=SECRET, users=users), tmp_path)
