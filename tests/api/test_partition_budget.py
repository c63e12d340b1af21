"""max_partitions_per_broker: a topic that would bring a broker past it is refused with 400
INVALID_REQUEST before anything is committed; the broker's metrics show the budgets."""

from tests.api.conftest import MakeClient
from tests.api.support import assert_error, create_topic

BUDGET = 10


async def test_a_topic_past_the_partition_budget_is_refused_and_nothing_is_created(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_partitions_per_broker=BUDGET)
    await create_topic(client, "fits", partitions=BUDGET - 1)
    resp = await client.post("/v1/topics", json={"name": "over", "partitions": 2})
    error = await assert_error(resp, 400, "INVALID_REQUEST")
    assert f"over max_partitions_per_broker = {BUDGET}" in error["message"]
    assert "about 1 partitions would fit" in error["message"]
    assert (await (await client.get("/v1/topics")).json())["topics"] == ["fits"]
    await create_topic(client, "last", partitions=1)

    metrics = await (await client.get("/metrics")).text()
    assert f"raftka_partition_replicas {float(BUDGET)}" in metrics
    assert f"raftka_max_partitions_per_broker {float(BUDGET)}" in metrics
    assert "raftka_open_segment_files " in metrics
    assert "raftka_segment_file_evictions_total " in metrics
