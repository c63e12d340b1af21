"""The /v1/groups routes on one in-process broker (a real quorum and real logs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import body_of, create_topic, produce

DEADLINE_S = 30.0


async def join(client: TestClient, group: str = "g", **fields: Any) -> dict[str, Any]:
    resp = await client.post(f"/v1/groups/{group}/members", json={"topics": ["t"], **fields})
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await body_of(resp)
    return answer


async def heartbeat(
    client: TestClient, member: str, generation: int, group: str = "g"
) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/groups/{group}/members/{member}/heartbeat", json={"generation": generation}
    )
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await body_of(resp)
    return answer


async def settle(client: TestClient, members: list[str]) -> dict[str, dict[str, Any]]:
    """Heartbeats every member at the generation it last heard until nothing moves."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    generations = dict.fromkeys(members, 0)
    while True:
        answers = {}
        for m in members:
            answers[m] = await heartbeat(client, m, generations[m])
            generations[m] = answers[m]["generation"]
        if not any(a["rebalance"] for a in answers.values()):
            return answers
        assert loop.time() < deadline, f"the group did not settle: {answers}"


async def consume(client: TestClient, member: str, **params: int) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/v1/groups/g/members/{member}/records", params={k: str(v) for k, v in params.items()}
    )
    assert resp.status == 200, await resp.text()
    records: list[dict[str, Any]] = (await body_of(resp))["records"]
    return records


async def commit(client: TestClient, member: str, generation: int, offsets: list[Any]) -> Any:
    return await client.post(
        "/v1/groups/g/offsets",
        json={"member_id": member, "generation": generation, "offsets": offsets},
    )


async def test_two_members_split_the_partitions_and_read_only_their_own(
    client: TestClient,
) -> None:
    await create_topic(client, "t", partitions=4)
    for p in range(4):
        await produce(client, "t", [{"value": p * 10 + i} for i in range(3)], partition=p)
    a = (await join(client))["member_id"]
    b = (await join(client))["member_id"]
    answers = await settle(client, [a, b])
    owned = {m: set(ans["assignment"]["t"]) for m, ans in answers.items()}
    assert owned[a].isdisjoint(owned[b]) and owned[a] | owned[b] == {0, 1, 2, 3}
    for m in (a, b):
        records: list[dict[str, Any]] = []
        while len(records) < 3 * len(owned[m]):
            records += await consume(client, m, max_wait_ms=1000)
        assert {r["partition"] for r in records} == owned[m]
        assert all(
            r["topic"] == "t" and r["value"] == r["partition"] * 10 + r["offset"] for r in records
        )
        assert await consume(client, m) == []  # positions moved past what was read


async def test_commits_are_stored_and_show_lag(client: TestClient) -> None:
    await create_topic(client, "t", partitions=1)
    await produce(client, "t", [{"value": i} for i in range(5)], partition=0)
    joined = await join(client)
    member, generation = joined["member_id"], joined["generation"]
    resp = await commit(client, member, generation, [{"topic": "t", "partition": 0, "offset": 2}])
    assert resp.status == 204, await resp.text()
    resp = await client.get("/v1/groups/g/offsets")
    assert await body_of(resp) == {
        "offsets": [{"topic": "t", "partition": 0, "offset": 2, "lag": 3}]
    }
    # A member starts from the committed offset.
    assert [r["offset"] for r in await consume(client, member)] == [2, 3, 4]


async def test_a_stale_generation_or_a_foreign_partition_is_refused_with_409(
    client: TestClient,
) -> None:
    await create_topic(client, "t", partitions=2)
    a = await join(client)
    b = await join(client)
    await settle(client, [a["member_id"], b["member_id"]])
    resp = await commit(
        client, a["member_id"], a["generation"], [{"topic": "t", "partition": 0, "offset": 1}]
    )
    assert resp.status == 409 and (await body_of(resp))["error"]["code"] == "STALE_GENERATION"
    state = await heartbeat(client, a["member_id"], b["generation"])
    foreign = 1 - state["assignment"]["t"][0]
    resp = await commit(
        client,
        a["member_id"],
        state["generation"],
        [{"topic": "t", "partition": foreign, "offset": 1}],
    )
    assert resp.status == 409 and (await body_of(resp))["error"]["code"] == "STALE_GENERATION"


async def test_auto_commit_commits_what_the_previous_answer_reached(client: TestClient) -> None:
    await create_topic(client, "t", partitions=1)
    await produce(client, "t", [{"value": i} for i in range(4)], partition=0)
    member = (await join(client, auto_commit=True))["member_id"]
    assert len(await consume(client, member, max_records=3)) == 3
    resp = await client.get("/v1/groups/g/offsets")
    assert (await body_of(resp))["offsets"] == []  # nothing committed before the next request
    assert len(await consume(client, member)) == 1
    resp = await client.get("/v1/groups/g/offsets")
    assert [o["offset"] for o in (await body_of(resp))["offsets"]] == [3]


async def test_a_long_poll_answers_when_a_record_arrives(client: TestClient) -> None:
    await create_topic(client, "t", partitions=2)
    member = (await join(client))["member_id"]
    polling = asyncio.ensure_future(consume(client, member, max_wait_ms=20_000))
    await asyncio.sleep(0)  # let the poll start waiting (it answers once a record exists)
    await produce(client, "t", [{"value": "late"}], partition=1)
    records = await asyncio.wait_for(polling, DEADLINE_S)
    assert [(r["partition"], r["value"]) for r in records] == [(1, "late")]


async def test_latest_starts_at_the_high_watermark(client: TestClient) -> None:
    await create_topic(client, "t", partitions=1)
    await produce(client, "t", [{"value": "old"}], partition=0)
    member = (await join(client, auto_offset_reset="latest"))["member_id"]
    assert await consume(client, member) == []
    await produce(client, "t", [{"value": "new"}], partition=0)
    assert [r["value"] for r in await consume(client, member)] == ["new"]


async def test_a_silent_member_expires_and_its_partitions_move(client: TestClient) -> None:
    await create_topic(client, "t", partitions=2)
    silent = (await join(client, session_timeout_ms=1000))["member_id"]
    alive = (await join(client, session_timeout_ms=60_000))["member_id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    generation = 0
    while True:  # only `alive` heartbeats
        answer = await heartbeat(client, alive, generation)
        generation = answer["generation"]
        if answer["assignment"].get("t") == [0, 1]:
            break
        assert loop.time() < deadline, answer
        await asyncio.sleep(0.05)
    resp = await client.post(f"/v1/groups/g/members/{silent}/heartbeat", json={"generation": 1})
    assert resp.status == 404 and (await body_of(resp))["error"]["code"] == "UNKNOWN_MEMBER"


async def test_leave_rebalances_and_the_member_is_unknown_afterwards(client: TestClient) -> None:
    await create_topic(client, "t", partitions=2)
    a = (await join(client))["member_id"]
    b = (await join(client))["member_id"]
    resp = await client.delete(f"/v1/groups/g/members/{b}")
    assert resp.status == 204
    answers = await settle(client, [a])
    assert answers[a]["assignment"] == {"t": [0, 1]}
    described = await body_of(await client.get("/v1/groups/g"))
    assert described["state"] == "Stable"
    assert [m["member_id"] for m in described["members"]] == [a]
    resp = await client.delete(f"/v1/groups/g/members/{b}")
    assert resp.status == 404


async def test_groups_are_listed(client: TestClient) -> None:
    await create_topic(client, "t", partitions=1)
    await join(client, group="b")
    await join(client, group="a")
    assert await body_of(await client.get("/v1/groups")) == {"groups": ["a", "b"]}


async def test_an_unknown_group_is_described_as_empty(client: TestClient) -> None:
    described = await body_of(await client.get("/v1/groups/nobody"))
    assert described == {"state": "Empty", "generation": 0, "members": [], "coordinator": 1}


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/v1/groups/g/members", {"topics": []}, "INVALID_REQUEST"),
        ("/v1/groups/g/members", {"topics": ["t"], "session_timeout_ms": 5}, "INVALID_REQUEST"),
        ("/v1/groups/g/members", {"topics": ["t"], "assignor": "x"}, "INVALID_REQUEST"),
        ("/v1/groups/g/members", {"topics": ["t"], "colour": 1}, "INVALID_REQUEST"),
        ("/v1/groups/bad%20id/members", {"topics": ["t"]}, "INVALID_REQUEST"),
        ("/v1/groups/g/members/nobody/heartbeat", {"generation": 1}, "UNKNOWN_MEMBER"),
        ("/v1/groups/g/members/nobody/heartbeat", {"generation": "1"}, "INVALID_REQUEST"),
        (
            "/v1/groups/g/offsets",
            {"member_id": "x", "generation": 1, "offsets": []},
            "INVALID_REQUEST",
        ),
        (
            "/v1/groups/g/offsets",
            {
                "member_id": "x",
                "generation": 1,
                "offsets": [{"topic": "t", "partition": 0, "offset": -1}],
            },
            "INVALID_REQUEST",
        ),
        (
            "/v1/groups/g/offsets",
            {
                "member_id": "x",
                "generation": 1,
                "offsets": [{"topic": "t", "partition": 0, "offset": 1}],
            },
            "UNKNOWN_MEMBER",
        ),
    ],
)
async def test_bad_group_requests_get_the_contract_error(
    client: TestClient, path: str, body: Any, code: str
) -> None:
    resp = await client.post(path, json=body)
    assert resp.status in (400, 404), await resp.text()
    assert (await body_of(resp))["error"]["code"] == code


async def test_a_long_poll_without_partitions_ends_when_the_group_changes(
    client: TestClient,
) -> None:
    await create_topic(client, "t", partitions=1)
    await produce(client, "t", [{"value": "x"}], partition=0)
    a = (await join(client))["member_id"]
    b = (await join(client))["member_id"]
    owner, idle = (a, b) if (await heartbeat(client, a, 0))["assignment"] else (b, a)
    # The idle member's poll would wait 30 s (the broker's cap); the owner leaving must
    # end it long before.
    polling = asyncio.ensure_future(consume(client, idle, max_wait_ms=60_000))
    resp = await client.delete(f"/v1/groups/g/members/{owner}")
    assert resp.status == 204
    assert await asyncio.wait_for(polling, DEADLINE_S / 2) == []
    await settle(client, [idle])
    assert [r["value"] for r in await consume(client, idle)] == ["x"]
