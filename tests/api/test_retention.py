"""The broker applies each topic's retention on its own, every
log_retention_check_interval_ms: whole old segments go and log_start_offset advances."""

import asyncio

from tests.api.conftest import MakeClient
from tests.api.support import create_topic, fetch

WAIT_S = 30.0
OLD_TIMESTAMP_MS = 1_000  # far older than any retention_ms


async def test_records_past_retention_ms_are_deleted_by_the_broker(make_client: MakeClient) -> None:
    client = await make_client(log_retention_check_interval_ms=50)
    await create_topic(client, "old", config={"retention_ms": 60_000, "segment_bytes": 200})
    for i in range(6):  # one ~150-byte batch per segment
        resp = await client.post(
            "/v1/topics/old/partitions/0/records?acks=1",
            json={"records": [{"value": f"v{i}", "timestamp": OLD_TIMESTAMP_MS}]},
        )
        assert resp.status == 200

    async def earliest() -> int:
        resp = await client.get("/v1/topics/old/partitions/0/offsets?timestamp=earliest")
        return int((await resp.json())["offset"])

    async def advanced() -> None:
        while await earliest() == 0:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(advanced(), WAIT_S)
    page = await fetch(client, "old", offset=await earliest())
    # The active segment always stays, so the newest record is still readable.
    assert page["records"][-1]["value"] == "v5"
    assert page["log_start_offset"] > 0
