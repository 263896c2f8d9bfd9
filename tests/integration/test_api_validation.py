"""Every validation rule of POST /v1/results answers 422 with the code that names it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support import (
    ACME,
    APPLICATION_ID,
    INTERACTION_ID,
    INTERACTION_TOKEN,
    submission,
    webhook_url,
)

INTERACTION = {
    "application_id": APPLICATION_ID,
    "interaction_id": INTERACTION_ID,
    "token": INTERACTION_TOKEN,
}


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"workflow_id": ""}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": "has space"}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": "x" * 129}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": "wf/1"}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": "."}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": ".."}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": "---"}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": "_:.-"}, "invalid_workflow_id", "workflow_id"),
        ({"workflow_id": 12}, "invalid_workflow_id", "workflow_id"),
        ({"results": [1, 2]}, "invalid_results", "results"),
        ({"results": "text"}, "invalid_results", "results"),
        ({"destination": None}, "missing_destination", "body"),
        ({"destination": {}}, "invalid_destination", "destination"),
        (
            {"destination": {"webhook_url": webhook_url(), "name": "ops"}},
            "invalid_destination",
            "destination",
        ),
        (
            {"destination": {"webhook_url": webhook_url(host="evil.example")}},
            "invalid_webhook_url",
            "destination.webhook_url",
        ),
        (
            {"destination": {"webhook_url": webhook_url() + "?x=1"}},
            "invalid_webhook_url",
            "destination.webhook_url",
        ),
        (
            {"destination": {"webhook_url": webhook_url(), "thread_id": "42"}},
            "invalid_snowflake",
            "destination.thread_id",
        ),
        (
            {"destination": {"webhook_url": webhook_url().replace("/api/", "/a\tpi/")}},
            "invalid_webhook_url",
            "destination.webhook_url",
        ),
        (
            {"destination": {"webhook_url": webhook_url() + "\n"}},
            "invalid_webhook_url",
            "destination.webhook_url",
        ),
        (
            {"destination": {"webhook_url": webhook_url(webhook_id="0" + "1" * 17)}},
            "invalid_webhook_url",
            "destination.webhook_url",
        ),
        (
            {"destination": {"webhook_url": webhook_url(), "thread_id": "0" + "1" * 18}},
            "invalid_snowflake",
            "destination.thread_id",
        ),
        (
            {"requester": {"channel_id": "0" + "1" * 17}},
            "invalid_snowflake",
            "requester.channel_id",
        ),
        ({"destination": {"name": "no spaces allowed"}}, "invalid_destination", "destination.name"),
        ({"requester": {"user_id": "abc"}}, "invalid_snowflake", "requester.user_id"),
        ({"requester": {"guild_id": "1" * 21}}, "invalid_snowflake", "requester.guild_id"),
        (
            {"interaction": {**INTERACTION, "interaction_id": "12"}},
            "invalid_snowflake",
            "interaction.interaction_id",
        ),
        (
            {"interaction": {**INTERACTION, "token": "short"}},
            "invalid_interaction",
            "interaction.token",
        ),
        (
            {"interaction": {"application_id": APPLICATION_ID}},
            "invalid_interaction",
            "interaction.interaction_id",
        ),
        ({"message": {"content": 5}}, "invalid_message", "message.content"),
        ({"message": {"embeds": "x"}}, "invalid_message", "message.embeds"),
        ({"url": "u" * 2049}, "invalid_url", "url"),
        ({"depth": "d" * 65}, "invalid_depth", "depth"),
        ({"depth": "a\x00b"}, "unstorable_text", "depth"),
        ({"destinaton": {"webhook_url": webhook_url()}}, "unknown_field", "destinaton"),
        (
            {"destination": {"webhook_url": webhook_url(), "token": "x"}},
            "unknown_field",
            "destination.token",
        ),
    ],
)
async def test_each_rule_has_its_code(
    client: httpx.AsyncClient, overrides: dict[str, Any], code: str, field: str
) -> None:
    # given a submission that breaks exactly one rule
    body = submission(**overrides)
    if "destination" in overrides and overrides["destination"] is None:
        body.pop("destination", None)
    # when it is posted
    response = await client.post("/v1/results", json=body, headers=ACME)
    # then it is refused with the rule's code and field, and nothing is stored
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["details"][0]["field"] == field
    assert error["message"]
    listing = await client.get("/v1/results", headers=ACME)
    assert listing.json()["items"] == []


async def test_text_a_database_cannot_store_is_refused(client: httpx.AsyncClient) -> None:
    # JSON may escape a lone surrogate ("\ud800"); it can be neither stored nor sent on.
    raw = json.dumps(submission(url="https://x/\ud800")).encode()
    headers = {**ACME, "Content-Type": "application/json"}
    response = await client.post("/v1/results", content=raw, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unpaired_surrogate"


async def test_missing_required_fields_are_each_reported(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/results", json={}, headers=ACME)
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {"workflow_id", "results"} <= fields


async def test_interaction_alone_is_a_valid_destination(client: httpx.AsyncClient) -> None:
    body = submission(destination=None, interaction=INTERACTION)
    body.pop("destination", None)
    response = await client.post("/v1/results", json=body, headers=ACME)
    assert response.status_code == 202, response.text
    record = response.json()
    assert record["destination"] is None
    assert record["interaction"]["interaction_id"] == INTERACTION_ID
    assert record["interaction"]["expires_at"].startswith("20")


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"", "missing_body"),
        (b"[1, 2]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b'{"workflow_id": "wf", "results": {"x": NaN}}', "non_finite_number"),
        (b'{"workflow_id": "wf", "results": {"x": Infinity}}', "non_finite_number"),
        (b'{"workflow_id": "wf", "results": {"x": -Infinity}}', "non_finite_number"),
        (
            b'{"workflow_id": "wf", "results": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
            "too_deep",
        ),
    ],
    ids=["not-json", "empty", "array", "string", "nan", "infinity", "minus-infinity", "deep"],
)
async def test_malformed_bodies_are_refused_clearly(
    client: httpx.AsyncClient, content: bytes, code: str
) -> None:
    headers = {**ACME, "Content-Type": "application/json"}
    response = await client.post("/v1/results", content=content, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


async def test_unknown_named_destination_is_refused(client: httpx.AsyncClient) -> None:
    body = submission(destination={"name": "ops-alerts"})
    response = await client.post("/v1/results", json=body, headers=ACME)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_destination"


async def test_refusals_never_echo_a_token(client: httpx.AsyncClient) -> None:
    token = "secret-" + "z" * 61
    body = submission(destination={"webhook_url": webhook_url(token=token, host="evil.example")})
    response = await client.post("/v1/results", json=body, headers=ACME)
    assert response.status_code == 422
    assert token not in response.text


async def test_a_snowflake_filter_with_a_leading_zero_is_refused(client: httpx.AsyncClient) -> None:
    # given a requester id spelled with a leading zero
    # when results are listed by it, then it is refused rather than read as another id
    response = await client.get(
        "/v1/results", params={"requester_id": "0" + "1" * 17}, headers=ACME
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_snowflake"
