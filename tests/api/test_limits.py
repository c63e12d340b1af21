"""max_request_bytes binds what clients send; a forwarded body may be re-encoded a little
larger and must still be taken by the leader, but only a broker that proves itself with
the cluster secret may send one (a client's own X-Raftka-Forwarded buys nothing)."""

import orjson

from raftka.api.broker_auth import BrokerAuth
from raftka.api.http.forward import FORWARDED_HEADER
from raftka.api.settings import Security
from tests.api.conftest import MakeClient
from tests.api.support import assert_error, create_topic, high_watermark

LIMIT_BYTES = 2000


def _body_of_size(size: int) -> bytes:
    body = orjson.dumps({"records": [{"value": ""}]})
    return orjson.dumps({"records": [{"value": "x" * (size - len(body))}]})


SECRET = "s" * 32


async def test_a_client_body_over_the_limit_is_refused_but_a_proven_forward_is_taken(
    make_client: MakeClient,
) -> None:
    client = await make_client(Security(cluster_secret=SECRET), max_request_bytes=LIMIT_BYTES)
    await create_topic(client, "t")
    over = _body_of_size(LIMIT_BYTES + 100)
    path = "/v1/topics/t/partitions/0/records"

    refused = await client.post(path + "?acks=1", data=over)
    await assert_error(refused, 413, "REQUEST_TOO_LARGE")
    forged = await client.post(path + "?acks=1", data=over, headers={FORWARDED_HEADER: "1"})
    await assert_error(forged, 413, "REQUEST_TOO_LARGE")
    wrong = {FORWARDED_HEADER: "1", **BrokerAuth("x" * 32).headers("POST", path)}
    await assert_error(await client.post(path, data=over, headers=wrong), 413, "REQUEST_TOO_LARGE")
    assert await high_watermark(client, "t") == 0

    proof = {FORWARDED_HEADER: "1", **BrokerAuth(SECRET).headers("POST", path)}
    forwarded = await client.post(path + "?acks=1", data=over, headers=proof)
    assert forwarded.status == 200
    assert await high_watermark(client, "t") == 1


async def test_without_a_secret_the_forwarded_header_lifts_no_limit(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_request_bytes=LIMIT_BYTES)
    await create_topic(client, "t")
    over = _body_of_size(LIMIT_BYTES + 100)
    path = "/v1/topics/t/partitions/0/records?acks=1"
    forged = await client.post(path, data=over, headers={FORWARDED_HEADER: "1"})
    await assert_error(forged, 413, "REQUEST_TOO_LARGE")
    assert await high_watermark(client, "t") == 0
