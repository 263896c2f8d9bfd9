"""The HTTP edge under hostile and heavy clients: the key before the body, bytes in flight
across requests, time for a body to arrive; whatever is refused leaves nothing stored and gives
its share of the budget back.

Requests are driven through the ASGI interface by hand, so a test decides when each piece of a
body arrives (or that it never does).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.config import Settings, load_settings
from service.middleware import ByteBudget
from tests.support import ACME, ACME_KEY, API_KEYS, SECRET_KEY, submission

MAX_BODY = 4096
IN_FLIGHT = 6144
TIMEOUT = 0.3


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path}/relay.db",
        api_keys=API_KEYS,
        max_body_bytes=MAX_BODY,
        max_inflight_bytes=IN_FLIGHT,
        body_timeout_seconds=TIMEOUT,
        secret_key=SECRET_KEY,
    )


def body_of_size(workflow_id: str, size: int) -> bytes:
    """A valid submission serialised to exactly ``size`` bytes."""
    body = submission(workflow_id, results={"padding": ""})
    body["results"]["padding"] = "x" * (size - len(json.dumps(body).encode()))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


class Exchange:
    """One request into the app; the test feeds its body piece by piece."""

    def __init__(
        self, app: FastAPI, *, length: int | None, key: str | None = ACME_KEY, path: str = ""
    ) -> None:
        headers = [(b"content-type", b"application/json")]
        if key is not None:
            headers.append((b"authorization", f"Bearer {key}".encode()))
        if length is None:
            headers.append((b"transfer-encoding", b"chunked"))
        else:
            headers.append((b"content-length", str(length).encode()))
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path or "/v1/results",
            "raw_path": (path or "/v1/results").encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("relay", 80),
        }
        self.pieces: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reads = 0
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.create_task(app(self.scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        self.reads += 1
        return await self.pieces.get()

    async def _send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def send(self, data: bytes, *, more: bool = False) -> None:
        self.pieces.put_nowait({"type": "http.request", "body": data, "more_body": more})

    def disconnect(self) -> None:
        self.pieces.put_nowait({"type": "http.disconnect"})

    async def answer(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        await asyncio.wait_for(self.task, 10)
        start = self.messages[0]
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        body = b"".join(m.get("body", b"") for m in self.messages[1:])
        return start["status"], headers, json.loads(body) if body else {}


def budget(app: FastAPI) -> ByteBudget:
    held: ByteBudget = app.state.body_budget
    return held


async def stored(client: httpx.AsyncClient) -> list[str]:
    listing = (await client.get("/v1/results", headers=ACME)).json()
    return [item["workflow_id"] for item in listing["items"]]


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {}),
        (b"", {}),
        (b"x" * (MAX_BODY + 1), {}),
        (b"{}", {"Authorization": "Bearer not-a-key-of-anyone-at-all"}),
    ],
    ids=["malformed", "empty", "over-the-size-limit", "unknown-key"],
)
async def test_unauthenticated_post_is_401_whatever_its_body(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    # given a request without a valid key, with a body that is malformed, empty or too large
    # when it is posted
    response = await client.post("/v1/results", content=content, headers=headers)
    # then it is refused for the key, not the body
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unauthenticated_body_is_never_read(app: FastAPI) -> None:
    # given a request that declares a body but sends none of it
    exchange = Exchange(app, length=MAX_BODY, key=None)
    # when the app answers
    status, headers, body = await exchange.answer()
    # then it is a 401 at once, without a single read, and the connection is closed
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert exchange.reads == 0
    assert headers["connection"] == "close"


async def test_over_budget_request_is_503_with_retry_after_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # given a request holding 4000 bytes of the 6144 in flight, its body still arriving
    first_body = body_of_size("wf_first", 4000)
    first = Exchange(app, length=len(first_body))
    first.send(first_body[:100], more=True)
    await asyncio.sleep(0.05)
    assert budget(app).used == 4000
    # when another declares 3000 bytes
    second = Exchange(app, length=3000)
    status, headers, body = await second.answer()
    # then it is refused with 503 overloaded and Retry-After, without reading its body
    assert (status, body["error"]["code"]) == (503, "overloaded")
    assert int(headers["retry-after"]) >= 1
    assert second.reads == 0
    # and the first completes and is stored, the second is not, and the budget is whole again
    first.send(first_body[100:])
    assert (await first.answer())[0] == 202
    assert await stored(client) == ["wf_first"]
    assert budget(app).used == 0


async def test_chunked_body_counts_as_it_arrives_and_is_refused_when_over(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # given a request holding 4000 bytes in flight
    holder = Exchange(app, length=4000)
    holder.send(b"{", more=True)
    # when a chunked body arrives past what is left (2144 bytes)
    chunked = Exchange(app, length=None)
    raw = body_of_size("wf_chunked", 3000)
    chunked.send(raw[:1500], more=True)
    chunked.send(raw[1500:], more=False)
    status, headers, body = await chunked.answer()
    # then it is 503 overloaded, nothing is stored, and only the holder's bytes stay reserved
    assert (status, body["error"]["code"]) == (503, "overloaded")
    assert "retry-after" in headers
    assert budget(app).used == 4000
    holder.disconnect()
    await holder.task
    assert budget(app).used == 0
    assert await stored(client) == []


async def test_body_that_does_not_arrive_in_time_is_408_and_closes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # given a valid body of which only the first bytes ever arrive
    raw = body_of_size("wf_slow", 1000)
    exchange = Exchange(app, length=len(raw))
    exchange.send(raw[:10], more=True)
    # when RELAY_BODY_TIMEOUT_SECONDS passes
    status, headers, body = await exchange.answer()
    # then it is 408 body_timeout, the connection is closed, nothing is stored, nothing held
    assert (status, body["error"]["code"]) == (408, "body_timeout")
    assert headers["connection"] == "close"
    assert await stored(client) == []
    assert budget(app).used == 0


async def test_budget_is_given_back_however_a_request_ends(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # given requests that end in a 422, a 409, a 413 mid-stream, a disconnect, and a 202
    malformed = Exchange(app, length=9)
    malformed.send(b"{not json")
    assert (await malformed.answer())[0] == 422
    accepted = Exchange(app, length=600)
    accepted.send(body_of_size("wf_ok", 600))
    assert (await accepted.answer())[0] == 202
    conflict = Exchange(app, length=700)
    conflict.send(body_of_size("wf_ok", 700))
    assert (await conflict.answer())[0] == 409
    too_large = Exchange(app, length=None)
    too_large.send(b"x" * 3000, more=True)
    too_large.send(b"x" * 3000, more=True)
    assert (await too_large.answer())[0] == 413
    gone = Exchange(app, length=500)
    gone.send(b"{", more=True)
    gone.disconnect()
    await asyncio.wait_for(gone.task, 10)
    # then nothing is held any more, and only the accepted result is stored
    assert budget(app).used == 0
    assert await stored(client) == ["wf_ok"]


async def test_unauthenticated_request_without_a_body_keeps_its_connection(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/results")
    assert response.status_code == 401
    assert "connection" not in response.headers


async def test_refusals_are_counted_by_code(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post("/v1/results", content=b"{}")
    slow = Exchange(app, length=100)
    await slow.answer()
    text = (await client.get("/metrics")).text
    assert 'relay_request_errors_total{code="unauthorized"} 1.0' in text
    assert 'relay_request_errors_total{code="body_timeout"} 1.0' in text


BODY_ROUTES = [
    ("POST", "/v1/results"),
    ("PUT", "/v1/destinations/ops"),
    ("POST", "/v1/results/wf_any/redeliver"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_every_body_route_checks_the_key_first_and_reads_json_the_same_way(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    # given a malformed body
    headers = {"Content-Type": "application/json"}
    # when it is sent without a key, then with one
    anonymous = await client.request(method, path, content=b"{not json", headers=headers)
    known = await client.request(method, path, content=b"{not json", headers={**headers, **ACME})
    # then the first is refused for the key, the second for the JSON
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert known.status_code == 422
    assert known.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("content", [b"", b"null"], ids=["no-body", "null"])
async def test_redeliver_without_a_destination_goes_where_it_went(
    client: httpx.AsyncClient, content: bytes
) -> None:
    await client.post("/v1/results", content=body_of_size("wf_again", 600), headers=ACME)
    headers = {**ACME, "Content-Type": "application/json"}
    response = await client.post("/v1/results/wf_again/redeliver", content=content, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["destination"]["webhook_id"] is not None
