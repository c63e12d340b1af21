"""Who is asking, and the refusals that follow from it, before any handler runs.

- A broker of this cluster proves itself with the cluster secret (api/broker_auth.py): it
  may do anything (it forwards what another broker already checked), and only it reaches
  the `/internal/` routes when the cluster has a secret (else 403 NOT_AUTHORIZED; without
  a secret, allowed on loopback only, they stay open to local processes).
- With `[[users]]` configured, every other request but `/healthz` and `/openapi.json`
  carries `Authorization: Bearer TOKEN` of a user (else 401 UNAUTHENTICATED), and the
  user's ACLs (api/acl.py) decide per route (else 403 NOT_AUTHORIZED naming what was
  refused). Checks that need the body or filter an answer (create a topic, join a group,
  list topics or groups) are made by the handlers through `authorize_topic`,
  `authorize_group` and `visible`.
- Without users the cluster is open: anyone who reaches it may do anything.

A token is verified against the scrypt hashes once (in a thread, one at a time, so a
flood of wrong tokens costs one core at most, never the event loop) and then remembered
by its SHA-256 for the life of the process; a refused one too, within bounds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from raftka.api.acl import Operation, User
from raftka.api.http.context import BROKER_KEY, USER_NAME, is_from_broker
from raftka.api.tokens import verify_token
from raftka.metadata.errors import NotAuthorized, Unauthenticated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INTERNAL_PREFIX = "/internal/"
# Served to anyone: probes and the API's description.
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
# Tokens remembered (verified or refused) at most; past it the memory starts over.
MAX_REMEMBERED_TOKENS = 10_000
BEARER = "Bearer "

# (method, route) -> the operation a user needs on the route's {topic}. Routes with
# {group} need the group (api/acl.py: consume); routes not listed need a user only, or
# are checked by their handler.
TOPIC_ROUTES: dict[tuple[str, str], Operation | None] = {
    ("GET", "/v1/topics/{topic}"): None,  # None: any operation on the topic (may_see)
    ("DELETE", "/v1/topics/{topic}"): Operation.ADMIN,
    ("POST", "/v1/topics/{topic}/records"): Operation.PRODUCE,
    ("POST", "/v1/topics/{topic}/partitions/{partition}/records"): Operation.PRODUCE,
    ("GET", "/v1/topics/{topic}/partitions/{partition}/records"): Operation.CONSUME,
    ("GET", "/v1/topics/{topic}/partitions/{partition}/offsets"): Operation.CONSUME,
}
ADMIN_ROUTES = frozenset({("GET", "/metrics")})


class Authenticator:
    """Maps a bearer token to its user."""

    def __init__(self, users: Iterable[User]) -> None:
        self.users = tuple(users)
        self._known: dict[bytes, User | None] = {}
        self._verifying = asyncio.Semaphore(1)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def user(self, name: str) -> User:
        return next(u for u in self.users if u.name == name)

    async def authenticate(self, authorization: str | None) -> User:
        if not authorization or not authorization.startswith(BEARER):
            raise Unauthenticated("this cluster needs Authorization: Bearer TOKEN")
        return await self.user_of_token(authorization[len(BEARER) :].strip())

    async def user_of_token(self, token: str) -> User:
        """The user whose token_hash `token` matches (the Kafka listener's SASL/PLAIN
        password too), or Unauthenticated."""
        digest = hashlib.sha256(token.encode()).digest()
        if digest not in self._known:
            async with self._verifying:
                if digest not in self._known:
                    loop = asyncio.get_running_loop()
                    user = await loop.run_in_executor(None, self._match, token)
                    if len(self._known) >= MAX_REMEMBERED_TOKENS:
                        self._known.clear()
                    self._known[digest] = user
        found = self._known[digest]
        if found is None:
            raise Unauthenticated("the token is not valid")
        return found

    def _match(self, token: str) -> User | None:
        for user in self.users:
            if verify_token(token, user.token_hash):
                return user
        return None


USERS_KEY = web.AppKey("users", Authenticator)


def current_user(request: web.Request) -> User | None:
    """The user making the request; None on an open cluster or for a broker."""
    name = request.get(USER_NAME)
    return None if name is None else request.app[USERS_KEY].user(name)


def authorize_topic(request: web.Request, operation: Operation, topic: str) -> None:
    user = current_user(request)
    if user is not None and not user.may(operation, topic):
        raise NotAuthorized(f"user {user.name} may not {operation.value} topic {topic!r}")


def authorize_group(request: web.Request, group: str) -> None:
    user = current_user(request)
    if user is not None and not user.may_use_group(group):
        raise NotAuthorized(f"user {user.name} may not use group {group!r}")


def visible(request: web.Request, names: Iterable[str], *, groups: bool = False) -> list[str]:
    """The topic (or group) names the user may see, sorted."""
    user = current_user(request)
    if user is None or user.is_admin:
        return sorted(names)
    seen = user.may_use_group if groups else user.may_see
    return sorted(n for n in names if seen(n))


def _check_route(user: User, request: web.Request) -> None:
    resource = request.match_info.route.resource
    route = None if resource is None else resource.canonical
    if route is None:
        return  # no such route: the 404 or 405 comes next
    key = (request.method, route)
    if key in ADMIN_ROUTES and not user.is_admin:
        raise NotAuthorized(f"user {user.name} may not read {route} (admin on '*' needed)")
    if key in TOPIC_ROUTES:
        topic = request.match_info["topic"]
        operation = TOPIC_ROUTES[key]
        if operation is None:
            if not user.may_see(topic):
                raise NotAuthorized(f"user {user.name} may not see topic {topic!r}")
        elif not user.may(operation, topic):
            raise NotAuthorized(f"user {user.name} may not {operation.value} topic {topic!r}")
    group = request.match_info.get("group")
    admin_describes = request.method == "GET" and route == "/v1/groups/{group}" and user.is_admin
    if group is not None and not user.may_use_group(group) and not admin_describes:
        raise NotAuthorized(f"user {user.name} may not use group {group!r}")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    broker = request.app[BROKER_KEY]
    if is_from_broker(request):
        return await handler(request)
    if request.path.startswith(INTERNAL_PREFIX) and broker.broker_auth.enabled:
        raise NotAuthorized(f"{request.path} is for the brokers of this cluster only")
    users = request.app[USERS_KEY]
    if users.enabled and request.path not in OPEN_PATHS:
        user = await users.authenticate(request.headers.get("Authorization"))
        request[USER_NAME] = user.name
        _check_route(user, request)
    return await handler(request)
