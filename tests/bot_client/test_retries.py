"""Retries and timeouts, against scripted answers (httpx.MockTransport): what is retried, how
long the client waits, and what it never retries."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bot_client import (
    APIError,
    RelayClient,
    RelayUnavailable,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from tests.bot_client.conftest import FAST_RETRY
from tests.support import FAKE_TOKEN, webhook_url

RECORD: dict[str, Any] = {
    "workflow_id": "wf_1",
    "status": "pending",
    "created_at": "2026-09-21T00:00:00Z",
    "updated_at": "2026-09-21T00:00:00Z",
    "retrieval_info": {"command": "/retrieve_results workflow_id:wf_1", "reason": None},
    "results": {},
    "some_future_field": "ignored",
}

Answer = httpx.Response | Exception


def scripted(answers: list[Answer]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport giving ``answers`` in turn; the requests it saw are in the list."""
    seen: list[httpx.Request] = []
    queue: Iterator[Answer] = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(queue)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


def error(status: int, code: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": code, **extra}})


def client(transport: httpx.MockTransport, **kwargs: Any) -> RelayClient:
    kwargs.setdefault("retries", FAST_RETRY)
    return RelayClient("http://relay", api_key="k" * 20, transport=transport, **kwargs)


async def submit(relay: RelayClient) -> Any:
    return await relay.submit_result(workflow_id="wf_1", results={}, destination=webhook_url())


@pytest.mark.parametrize(
    "first_failure",
    [
        pytest.param(lambda: error(503, "store_unavailable"), id="503"),
        pytest.param(lambda: httpx.Response(502, text="<html>bad gateway</html>"), id="502-page"),
        pytest.param(lambda: httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(lambda: httpx.ReadTimeout("slow"), id="read-timeout"),
    ],
)
async def test_submit_retries_transient_failures_then_succeeds(
    first_failure: Callable[[], Answer],
) -> None:
    transport, seen = scripted([first_failure(), first_failure(), httpx.Response(202, json=RECORD)])
    async with client(transport) as relay:
        outcome = await submit(relay)
    assert outcome.status == "accepted"
    assert len(seen) == 3
    # every try sends the same body: that is what makes the retries safe
    assert len({request.content for request in seen}) == 1


async def test_submit_gives_up_after_the_attempts_without_a_spool() -> None:
    transport, seen = scripted([error(503, "store_unavailable")] * 3)
    async with client(transport) as relay:
        with pytest.raises(ServerError) as caught:
            await submit(relay)
    assert (caught.value.status_code, caught.value.code) == (503, "store_unavailable")
    assert len(seen) == FAST_RETRY.attempts


async def test_connection_failure_is_relay_unavailable_without_secrets() -> None:
    transport, _ = scripted([httpx.ConnectError(f"refused {webhook_url()}")] * 3)
    async with client(transport) as relay:
        with pytest.raises(RelayUnavailable) as caught:
            await submit(relay)
    assert caught.value.status_code is None and caught.value.code == "unavailable"
    assert FAKE_TOKEN not in str(caught.value)
    assert "k" * 20 not in str(caught.value)
    # httpx's error holds the request and its headers: not chained
    assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_a_refusal_is_never_retried() -> None:
    details = [{"field": "results", "code": "invalid_results", "message": "must be an object"}]
    transport, seen = scripted([error(422, "invalid_results", details=details)])
    async with client(transport) as relay:
        with pytest.raises(ValidationError) as caught:
            await submit(relay)
    assert len(seen) == 1
    assert caught.value.details[0].code == "invalid_results"


async def test_redeliver_is_retried_only_when_the_request_never_left() -> None:
    # a timeout after sending could mean Discord gets everything twice: no retry
    transport, seen = scripted([httpx.ReadTimeout("slow")])
    async with client(transport) as relay:
        with pytest.raises(RelayUnavailable):
            await relay.redeliver("wf_1")
    assert len(seen) == 1
    # a refused connection is safe to retry
    transport, seen = scripted([httpx.ConnectError("refused"), httpx.Response(202, json=RECORD)])
    async with client(transport) as relay:
        record = await relay.redeliver("wf_1", destination=webhook_url())
    assert record.workflow_id == "wf_1" and len(seen) == 2
    assert json.loads(seen[1].content) == {"destination": {"webhook_url": webhook_url()}}


async def test_retry_after_from_the_service_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("bot_client._client.asyncio.sleep", fake_sleep)
    busy = httpx.Response(
        503, headers={"Retry-After": "3"}, json={"error": {"code": "x", "message": "x"}}
    )
    transport, _ = scripted([busy, httpx.Response(202, json=RECORD)])
    async with client(transport, retries=RetryPolicy(attempts=2, base=0.01, cap=5.0)) as relay:
        await submit(relay)
    assert waits == [3.0]


async def test_requests_carry_the_key_and_a_timeout() -> None:
    transport, seen = scripted([httpx.Response(200, json={"items": []})])
    async with client(transport, timeout=2.5) as relay:
        assert await relay.list_destinations() == []
    [request] = seen
    assert request.headers["Authorization"] == "Bearer " + "k" * 20
    assert request.extensions["timeout"] == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}


@pytest.mark.parametrize(
    ("failed", "base", "cap", "ceiling"),
    [(1, 0.5, 8.0, 0.5), (2, 0.5, 8.0, 1.0), (4, 0.5, 8.0, 4.0), (10, 0.5, 8.0, 8.0)],
)
def test_backoff_is_exponential_with_full_jitter_under_a_cap(
    failed: int, base: float, cap: float, ceiling: float
) -> None:
    policy = RetryPolicy(attempts=20, base=base, cap=cap)
    rng = random.Random(7)
    waits = [policy.delay(failed, rng=rng) for _ in range(500)]
    assert all(0 <= w <= ceiling for w in waits)
    assert max(waits) > ceiling * 0.9 and min(waits) < ceiling * 0.1


def test_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_a_success_answer_of_the_wrong_shape_is_an_api_error() -> None:
    transport, _ = scripted([httpx.Response(200, text="<html>captive portal</html>")])
    async with client(transport) as relay:
        with pytest.raises(APIError) as caught:
            await relay.get_result("wf_1")
    assert caught.value.code == "unexpected_response"
