"""SASL/PLAIN messages (RFC 4616) and what a connection's Access allows: the pure parts
of the Kafka listener's authentication and authorization."""

from __future__ import annotations

import pytest

from raftka.api.acl import Acl, Operation, User
from raftka.api.kafka.access import OPEN, Access
from raftka.api.kafka.sasl import PlainCredentials, SaslError, parse_plain


@pytest.mark.parametrize(
    ("message", "credentials"),
    [
        (b"\x00app\x00token-0123456789", PlainCredentials("app", "token-0123456789")),
        (b"app\x00app\x00t", PlainCredentials("app", "t")),  # authzid = username
    ],
)
def test_plain_messages_give_username_and_token(message: bytes, credentials: PlainCredentials):
    assert parse_plain(message) == credentials


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"app\x00token", "authzid NUL username NUL password"),
        (b"\x00\x00token", "needs a username and a password"),
        (b"\x00app\x00", "needs a username and a password"),
        (b"admin\x00app\x00token", "another user"),
        (b"\x00app\x00" + b"t" * 256, "longer than 255 bytes"),
        (b"\x00\xff\x00token", "UTF-8"),
        (b"\x00a\x00b\x00c", "authzid NUL username NUL password"),
    ],
)
def test_malformed_plain_messages_are_refused(message: bytes, why: str):
    with pytest.raises(SaslError, match=why):
        parse_plain(message)


PRODUCER = User(
    "p", "unused", (Acl(frozenset({Operation.PRODUCE}), topics=("orders.*",), groups=()),)
)
READER = User(
    "r", "unused", (Acl(frozenset({Operation.CONSUME}), topics=("logs",), groups=("g",)),)
)


@pytest.mark.parametrize(
    ("access", "produce_orders", "consume_logs", "group_g", "sees_logs", "may_produce"),
    [
        (OPEN, True, True, True, True, True),
        (Access(PRODUCER), True, False, False, False, True),
        (Access(READER), False, True, True, True, False),
    ],
)
def test_access_follows_the_users_acls_and_an_open_cluster_allows_all(
    access: Access,
    produce_orders: bool,
    consume_logs: bool,
    group_g: bool,
    sees_logs: bool,
    may_produce: bool,
):
    assert access.may(Operation.PRODUCE, "orders.eu") is produce_orders
    assert access.may(Operation.CONSUME, "logs") is consume_logs
    assert access.may_use_group("g") is group_g
    assert access.may_see("logs") is sees_logs
    assert access.may_produce is may_produce
