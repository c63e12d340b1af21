from aiohttp.test_utils import TestClient


async def test_a_ready_broker_answers_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
