"""Accept is durable and idempotent: proven against a real process, a real crash and a restart."""

from __future__ import annotations

import asyncio

import pytest

from ._support import API_KEY, OTHER_API_KEY, Relay, auth, submission

pytestmark = pytest.mark.acceptance

N_RESULTS = 50


def _results(i: int) -> dict[str, object]:
    # Varied JSON (unicode, floats, nesting, nulls) so "equal" means the store kept it exactly.
    return {
        "summary": f'analysis #{i}: ünïcödé ✓ "quoted" \n newline',
        "deception_score": i / 7,
        "claims": [{"text": f"claim {j}", "verdict": j % 2 == 0} for j in range(i % 4)],
        "nothing": None,
        "big": 2**53,
    }


async def test_sigkill_after_202_loses_nothing(relay: Relay) -> None:
    # Given a server that has answered 202 to N concurrent submissions
    server = relay.start()
    bodies = {
        f"wf-crash-{i:03d}": submission(f"wf-crash-{i:03d}", _results(i)) for i in range(N_RESULTS)
    }
    async with server.async_client(headers=auth()) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/results", json=body) for body in bodies.values())
        )
    assert [r.status_code for r in responses] == [202] * N_RESULTS

    # When it is SIGKILLed right after the last 202 (no shutdown, no final commit) and restarted
    server.kill()
    restarted = relay.start()

    # Then every accepted result is there, pending, with exactly the results that were sent
    async with restarted.async_client(headers=auth()) as client:
        reads = await asyncio.gather(*(client.get(f"/v1/results/{wf}") for wf in bodies))
        listing = await client.get("/v1/results", params={"limit": 200})
    for workflow_id, read in zip(bodies, reads, strict=True):
        assert read.status_code == 200, (workflow_id, read.text)
        record = read.json()
        assert record["workflow_id"] == workflow_id
        assert record["status"] == "pending"
        assert record["results"] == bodies[workflow_id]["results"]
    assert listing.status_code == 200
    assert sorted(item["workflow_id"] for item in listing.json()["items"]) == sorted(bodies)


def test_idempotency_holds_across_a_restart(relay: Relay) -> None:
    # Given a result accepted by a server that has since been stopped and started again
    body = submission("wf-idem", {"summary": "first", "score": 0.5})
    first_server = relay.start()
    with first_server.client(headers=auth()) as client:
        first = client.post("/v1/results", json=body)
    assert first.status_code == 202
    first_server.stop()
    server = relay.start()

    with server.client(headers=auth()) as client:
        # When the same body is sent again (keys in another order: same submission)
        again = client.post("/v1/results", json=dict(reversed(list(body.items()))))
        # Then it is 200 with the record stored the first time
        assert again.status_code == 200, again.text
        assert again.json()["created_at"] == first.json()["created_at"]
        assert again.json()["results"] == body["results"]
        assert again.headers["location"] == "/v1/results/wf-idem"

        # When a different body comes under the same workflow_id
        changed = client.post(
            "/v1/results", json=submission("wf-idem", {"summary": "second", "score": 0.5})
        )
        # Then it is 409 workflow_id_conflict and the stored result is unchanged
        assert changed.status_code == 409, changed.text
        assert changed.json()["error"]["code"] == "workflow_id_conflict"
        stored = client.get("/v1/results/wf-idem")
        assert stored.status_code == 200
        assert stored.json()["results"] == {"summary": "first", "score": 0.5}

    # And the workflow_id is scoped to the tenant: another tenant may use it, and cannot see ours
    with server.client(headers=auth(OTHER_API_KEY)) as other:
        assert other.get("/v1/results/wf-idem").status_code == 404
        theirs = other.post("/v1/results", json=submission("wf-idem", {"summary": "theirs"}))
        assert theirs.status_code == 202, theirs.text
    with server.client(headers=auth(API_KEY)) as client:
        assert client.get("/v1/results/wf-idem").json()["results"]["summary"] == "first"
