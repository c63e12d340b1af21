"""max_request_bytes binds what clients send; a forwarded body may be re-encoded a little
larger and must still be taken by the leader."""

import orjson

from raftka.api.http.forward import FORWARDED_HEADER
from tests.api.conftest import MakeClient
from tests.api.support import assert_error, create_topic, high_watermark

LIMIT_BYTES = 2000


def _body_of_size(size: int) -> bytes:
    body = orjson.dumps({"records": [{"value": ""}]})
    return orjson.dumps({"records": [{"value": "x" * (size - len(body))}]})


async def test_a_client_body_over_the_limit_is_refused_but_a_forwarded_one_is_taken(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_request_bytes=LIMIT_BYTES)
    await create_topic(client, "t")
    over = _body_of_size(LIMIT_BYTES + 100)
    path = "/v1/topics/t/partitions/0/records?acks=1"

    refused = await client.post(path, data=over)
    await assert_error(refused, 413, "REQUEST_TOO_LARGE")
    assert await high_watermark(client, "t") == 0

    forwarded = await client.post(path, data=over, headers={FORWARDED_HEADER: "1"})
    assert forwarded.status == 200
    assert await high_watermark(client, "t") == 1
