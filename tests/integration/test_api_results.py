"""Submitting, reading, listing, deleting: idempotency, tenants, pagination and filters."""

from __future__ import annotations

import httpx

from service.api.deps import Services
from service.auth import hash_key, new_api_key
from tests.conftest import Clock
from tests.support import ACME, FAKE_TOKEN, OTHER, USER_ID, WEBHOOK_ID, submission


async def test_accepted_result_reads_back_whole(client: httpx.AsyncClient) -> None:
    # given a submission
    body = submission("wf_read", message={"content": "Done!"})
    # when it is accepted
    created = await client.post("/v1/results", json=body, headers=ACME)
    assert created.status_code == 202
    assert created.headers["location"] == "/v1/results/wf_read"
    # then the record holds everything that was sent, except the token
    record = (await client.get("/v1/results/wf_read", headers=ACME)).json()
    assert record["status"] == "pending"
    assert record["results"] == body["results"]
    assert record["url"] == body["url"]
    assert record["depth"] == "experimental"
    assert record["message"] == {"content": "Done!", "embeds": []}
    assert record["destination"] == {
        "name": None,
        "webhook_id": WEBHOOK_ID,
        "thread_id": None,
        "channel_id": None,
    }
    assert record["dm_fallback"] is None
    assert record["requester"]["user_id"] == USER_ID
    assert (record["attempts"], record["counted_attempts"]) == (0, 0)
    assert record["messages"] == []
    assert record["retrieval_info"] == {
        "command": "/retrieve_results workflow_id:wf_read",
        "reason": None,
    }
    assert FAKE_TOKEN not in created.text
    assert FAKE_TOKEN not in (await client.get("/v1/results", headers=ACME)).text


async def test_same_body_again_is_200_with_the_existing_record(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/results", json=submission("wf_idem"), headers=ACME)
    # key order and whitespace do not make a different body
    reordered = dict(reversed(list(submission("wf_idem").items())))
    again = await client.post("/v1/results", json=reordered, headers=ACME)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["created_at"] == first.json()["created_at"]


async def test_different_body_under_same_id_is_409_and_keeps_the_first(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v1/results", json=submission("wf_c"), headers=ACME)
    changed = submission("wf_c", results={"summary": "something else"})
    response = await client.post("/v1/results", json=changed, headers=ACME)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "workflow_id_conflict"
    stored = (await client.get("/v1/results/wf_c", headers=ACME)).json()
    assert stored["results"]["summary"] == "All clear"


async def test_another_tenants_result_is_not_found(client: httpx.AsyncClient) -> None:
    await client.post("/v1/results", json=submission("wf_t"), headers=ACME)
    for response in (
        await client.get("/v1/results/wf_t", headers=OTHER),
        await client.get("/v1/results/wf_t/attempts", headers=OTHER),
        await client.delete("/v1/results/wf_t", headers=OTHER),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/results", headers=OTHER)).json()["items"] == []
    # the same workflow id is free for the other tenant
    other = await client.post("/v1/results", json=submission("wf_t"), headers=OTHER)
    assert other.status_code == 202
    assert (await client.get("/v1/results/wf_t", headers=ACME)).status_code == 200


async def test_v1_needs_a_valid_key_and_health_does_not(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key-0000000000"}, {"Authorization": "x"}):
        response = await client.get("/v1/results", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    posted = await client.post("/v1/results", json=submission(), headers={})
    assert posted.status_code == 401
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200


async def test_stored_keys_work_until_revoked(
    client: httpx.AsyncClient, services: Services, clock: Clock
) -> None:
    store = services.store
    key, secret = new_api_key("team", "ci", clock())
    await store.add_api_key(key, key_hash=hash_key(secret))
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/results", headers=headers)).status_code == 200
    assert await store.revoke_api_key(key.key_id, now=clock())
    assert [k.revoked_at for k in await store.list_api_keys()] == [clock()]


async def test_list_pages_newest_first_without_gaps_or_repeats(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    for i in range(7):
        await client.post("/v1/results", json=submission(f"wf_{i}"), headers=ACME)
        clock.advance(1 if i % 2 else 0)  # some share a timestamp: the cursor must break ties
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/results", params=params, headers=ACME)).json()
        seen += [item["workflow_id"] for item in page["items"]]
        assert "results" not in page["items"][0]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"wf_{i}" for i in reversed(range(7))]


async def test_list_filters(client: httpx.AsyncClient, clock: Clock) -> None:
    start = clock()
    await client.post("/v1/results", json=submission("a", url="https://x/1"), headers=ACME)
    clock.advance(60)
    other_user = {"user_id": "556677889900112233"}
    body = submission("b", url="https://x/2", requester=other_user)
    await client.post("/v1/results", json=body, headers=ACME)

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/results", params=params, headers=ACME)
        assert response.status_code == 200, response.text
        return [item["workflow_id"] for item in response.json()["items"]]

    assert await ids(url="https://x/1") == ["a"]
    assert await ids(requester_id=USER_ID) == ["a"]
    assert await ids(status="pending") == ["b", "a"]
    assert await ids(status="orphaned") == []
    assert await ids(since=_iso(start + 30)) == ["b"]
    assert await ids(until=_iso(start + 30)) == ["a"]
    assert await ids(since=_iso(start), until=_iso(start + 61)) == ["b", "a"]


async def test_list_q_finds_a_literal_piece_of_the_id_or_url(client: httpx.AsyncClient) -> None:
    # given results whose ids and URLs differ by case and by LIKE's wildcards
    for workflow_id, url in (
        ("Nightly_1", "https://ci.example/job?load=50%"),
        ("nightly-2", "https://ci.example/job?load=500"),
        ("weekly", "https://CI.example/other"),
    ):
        body = submission(workflow_id, url=url)
        assert (await client.post("/v1/results", json=body, headers=ACME)).status_code == 202

    async def ids(q: str, **params: str) -> list[str]:
        response = await client.get("/v1/results", params={"q": q, **params}, headers=ACME)
        assert response.status_code == 200, response.text
        return [item["workflow_id"] for item in response.json()["items"]]

    # then q matches either field in either case, its % and _ literally
    assert await ids("NIGHTLY") == ["nightly-2", "Nightly_1"]
    assert await ids("ci.example/") == ["weekly", "nightly-2", "Nightly_1"]
    assert await ids("50%") == ["Nightly_1"]
    assert await ids("y_") == ["Nightly_1"]
    assert await ids("nightly", limit="1") == ["nightly-2"]
    # and another tenant's results stay out of it
    other = await client.get("/v1/results", params={"q": "nightly"}, headers=OTHER)
    assert other.json()["items"] == []


async def test_bad_list_queries_are_422(client: httpx.AsyncClient) -> None:
    for params, code in (
        ({"status": "lost"}, "invalid_query"),
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "1000"}, "invalid_query"),
        ({"since": "yesterday"}, "invalid_query"),
        ({"requester_id": "12"}, "invalid_snowflake"),
        ({"q": ""}, "invalid_query"),
        ({"q": "x" * 101}, "invalid_query"),
        ({"q": "a\x00b"}, "unstorable_text"),
    ):
        response = await client.get("/v1/results", params=params, headers=ACME)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] == code
    response = await client.get("/v1/results", params={"cursor": "!!nope"}, headers=ACME)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_cursor"


async def test_delete_removes_the_result(client: httpx.AsyncClient) -> None:
    await client.post("/v1/results", json=submission("wf_d"), headers=ACME)
    assert (await client.delete("/v1/results/wf_d", headers=ACME)).status_code == 204
    assert (await client.get("/v1/results/wf_d", headers=ACME)).status_code == 404
    assert (await client.delete("/v1/results/wf_d", headers=ACME)).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert "relay_results_deleted_total 1.0" in metrics


async def test_attempts_of_a_new_result_are_empty(client: httpx.AsyncClient) -> None:
    await client.post("/v1/results", json=submission("wf_a"), headers=ACME)
    response = await client.get("/v1/results/wf_a/attempts", headers=ACME)
    assert response.json() == {"items": []}


async def test_body_over_the_limit_is_413_before_validation(
    client: httpx.AsyncClient, services: Services
) -> None:
    limit = services.settings.max_body_bytes
    big = submission("wf_big", results={"blob": "x" * limit})
    response = await client.post("/v1/results", json=big, headers=ACME)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert (await client.get("/v1/results/wf_big", headers=ACME)).status_code == 404


async def test_metrics_count_accepts_and_errors(client: httpx.AsyncClient) -> None:
    await client.post("/v1/results", json=submission("m"), headers=ACME)
    await client.post("/v1/results", json=submission("m"), headers=ACME)
    await client.post("/v1/results", json=submission("bad id"), headers=ACME)
    text = (await client.get("/metrics")).text
    assert 'relay_results_accepted_total{outcome="created"} 1.0' in text
    assert 'relay_results_accepted_total{outcome="duplicate"} 1.0' in text
    assert 'relay_request_errors_total{code="invalid_workflow_id"} 1.0' in text
    assert "http_requests_total" in text


def _iso(timestamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).isoformat()
