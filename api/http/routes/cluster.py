"""GET /v1/cluster, /healthz, /metrics, POST /v1/producers."""

from __future__ import annotations

from aiohttp import web

from raftka.api.http.context import BROKER_KEY, METRICS_KEY, json_response


async def get_cluster(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    state = broker.state
    brokers = []
    seen: set[int] = set()
    for b in broker.config.brokers:
        record = state.brokers.get(b.broker_id)
        brokers.append(
            {
                "id": b.broker_id,
                "url": record.url if record else b.url,
                "alive": record is not None and not record.fenced,
                "raft_voter": b.raft is not None,
                "fenced": record.fenced if record else None,
            }
        )
        seen.add(b.broker_id)
    for broker_id, record in sorted(state.brokers.items()):
        if broker_id not in seen:
            brokers.append(
                {
                    "id": broker_id,
                    "url": record.url,
                    "alive": not record.fenced,
                    "raft_voter": record.raft_voter,
                    "fenced": record.fenced,
                }
            )
    raft = None
    if broker.quorum is not None:
        status = broker.quorum.status()
        raft = {
            "term": status.raft_term,
            "commit_index": status.commit_index,
            "has_quorum": status.has_quorum,
        }
    return json_response(
        {
            "cluster_id": broker.config.cluster_id,
            "controller": broker.controller_id,
            "brokers": brokers,
            "broker_id": broker.broker_id,
            "raft": raft,
        }
    )


async def healthz(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    if broker.ready:
        return json_response({"status": "ok", "broker_id": broker.broker_id})
    return json_response({"status": "starting", "broker_id": broker.broker_id}, 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def allocate_producer(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    producer_id = await broker.producer_ids.allocate()
    return json_response({"id": producer_id, "epoch": 0})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/cluster", get_cluster)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/producers", allocate_producer)
