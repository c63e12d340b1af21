"""Users and their ACLs: who may do what on which topics and groups. Pure: no I/O.

A user (a `[[users]]` table of the cluster config) has a name, a token hash and ACL
entries; each entry grants operations on topics and, for `consume`, on consumer groups.
A pattern is a name, or a prefix ending in `*` (`orders.*` matches `orders.eu`, `*`
matches everything). Everything not granted is refused: there is no deny rule.
- `produce`: write records to a topic;
- `consume`: read a topic (fetch, offsets, describe) and, for groups, join, commit and
  read a group's offsets;
- `admin`: create, delete and describe topics, describe groups, read cluster metrics.
Any user may read the cluster view (`GET /v1/cluster`) and sees there only the topics it
may touch.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from raftka.api.tokens import TokenHashError, check_token_hash
from raftka.metadata.errors import InvalidRequest


class Operation(enum.Enum):
    PRODUCE = "produce"
    CONSUME = "consume"
    ADMIN = "admin"


ACL_KEYS = frozenset({"operations", "topics", "groups"})
# A user's name shows in refusals, logs and the rendered config: plain characters only.
USER_NAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
# A topic or group name (their characters), or a prefix of one ending in '*'.
PATTERN = re.compile(r"[A-Za-z0-9._-]{1,249}|[A-Za-z0-9._-]{0,248}\*")
USER_KEYS = frozenset({"name", "token_hash", "acls"})


class AclConfigError(InvalidRequest):
    """A [[users]] entry of the cluster config is not usable."""


def matches(pattern: str, name: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


@dataclass(frozen=True, slots=True)
class Acl:
    operations: frozenset[Operation]
    topics: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def allows_topic(self, operation: Operation, topic: str) -> bool:
        return operation in self.operations and any(matches(p, topic) for p in self.topics)

    def allows_group(self, group: str) -> bool:
        return Operation.CONSUME in self.operations and any(matches(p, group) for p in self.groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "operations": sorted(op.value for op in self.operations),
            "topics": list(self.topics),
            "groups": list(self.groups),
        }


@dataclass(frozen=True, slots=True)
class User:
    name: str
    token_hash: str
    acls: tuple[Acl, ...] = ()

    def may(self, operation: Operation, topic: str) -> bool:
        return any(acl.allows_topic(operation, topic) for acl in self.acls)

    def may_use_group(self, group: str) -> bool:
        return any(acl.allows_group(group) for acl in self.acls)

    def may_see(self, topic: str) -> bool:
        """Whether a metadata read (topic list, cluster status) shows `topic`."""
        return any(self.may(op, topic) for op in Operation)

    @property
    def is_admin(self) -> bool:
        """Admin on every topic name: may read cluster-wide things (metrics, all groups)."""
        return any(Operation.ADMIN in acl.operations and "*" in acl.topics for acl in self.acls)


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise AclConfigError(f"{where} must be a list of non-empty names or prefixes")
    for p in value:
        if "*" in p[:-1]:
            raise AclConfigError(f"{where}: '*' may only end a pattern, got {p!r}")
        if not PATTERN.fullmatch(p):
            raise AclConfigError(
                f"{where}: {p!r} is not a name of [A-Za-z0-9._-], or a prefix with *"
            )
    return tuple(value)


def parse_acl(raw: Any, where: str) -> Acl:
    if not isinstance(raw, dict):
        raise AclConfigError(f"{where} must be a table")
    unknown = set(raw) - ACL_KEYS
    if unknown:
        raise AclConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    ops = raw.get("operations")
    if not isinstance(ops, list) or not ops:
        raise AclConfigError(f"{where}.operations must be a non-empty list")
    try:
        operations = frozenset(Operation(op) for op in ops)
    except ValueError:
        names = ", ".join(op.value for op in Operation)
        raise AclConfigError(f"{where}.operations: each must be one of {names}") from None
    topics = _patterns(raw.get("topics", []), f"{where}.topics")
    groups = _patterns(raw.get("groups", []), f"{where}.groups")
    return Acl(operations, topics, groups)


def parse_users(raw: Any) -> tuple[User, ...]:
    if not isinstance(raw, list):
        raise AclConfigError("[[users]] must be an array of tables")
    users: list[User] = []
    for i, entry in enumerate(raw):
        where = f"users[{i}]"
        if not isinstance(entry, dict):
            raise AclConfigError(f"{where} must be a table")
        unknown = set(entry) - USER_KEYS
        if unknown:
            raise AclConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        name = entry.get("name")
        if not isinstance(name, str) or not USER_NAME_PATTERN.fullmatch(name):
            raise AclConfigError(f"{where}.name must be 1-64 characters of A-Z a-z 0-9 . _ @ -")
        token_hash = entry.get("token_hash")
        try:
            check_token_hash(token_hash)
        except TokenHashError as exc:
            raise AclConfigError(f"{where}.token_hash: {exc}") from None
        assert isinstance(token_hash, str)  # check_token_hash refused anything else
        acls = entry.get("acls", [])
        if not isinstance(acls, list):
            raise AclConfigError(f"{where}.acls must be a list of tables")
        users.append(
            User(
                name,
                token_hash,
                tuple(parse_acl(a, f"{where}.acls[{j}]") for j, a in enumerate(acls)),
            )
        )
    names = [u.name for u in users]
    if len(set(names)) != len(names):
        raise AclConfigError("user names must be unique")
    hashes = [u.token_hash for u in users]
    if len(set(hashes)) != len(hashes):
        raise AclConfigError("two users have the same token_hash")
    return tuple(users)


def acl_table(users: Iterable[User]) -> list[dict[str, Any]]:
    """What `raftka acl list` prints: each user with its ACL entries (never a hash)."""
    return [{"name": u.name, "acls": [a.to_json() for a in u.acls]} for u in users]
