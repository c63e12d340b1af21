"""raftka.api.http: the HTTP face of a broker: the aiohttp app, its routes, forwarding, connection limits and metrics."""
