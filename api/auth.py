"""Who is asking: a broker of this cluster, a user with a token, or anyone (an open
cluster); and the refusals that follow from it, before any handler runs.

- `/internal/` routes: with a cluster secret, only a request that proves it comes from a
  broker (api/broker_auth.py) reaches them; anything else is 403 NOT_AUTHORIZED. Without
  a secret (loopback only, api/settings.py) they stay open to local processes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from raftka.api.context import BROKER_KEY, is_from_broker
from raftka.metadata.errors import NotAuthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INTERNAL_PREFIX = "/internal/"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    broker = request.app[BROKER_KEY]
    if (
        request.path.startswith(INTERNAL_PREFIX)
        and broker.broker_auth.enabled
        and not is_from_broker(request)
    ):
        raise NotAuthorized(f"{request.path} is for the brokers of this cluster only")
    return await handler(request)
