"""Retries and timeouts, against scripted answers (httpx.MockTransport): what is retried, how
long the client waits, and what it never retries."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot_client import (
    APIError,
    AuthenticationError,
    ConflictError,
    PayloadTooLargeError,
    RelayClient,
    RelayUnavailable,
    RetryPolicy,
    ServerError,
    Spool,
    ValidationError,
)
from bot_client._retry import parse_retry_after, retryable_status
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


# -- what is retried: one table, then each row end to end ------------------------------------

KEY = "k" * 20


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's sleeps, recorded instead of slept."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr("bot_client._client.asyncio.sleep", fake_sleep)
    return recorded


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (405, False),
        (408, True),
        (409, False),
        (410, False),
        (413, False),
        (422, False),
        (425, True),
        (429, True),
        (451, False),
        (499, False),
        (500, True),
        (501, True),
        (502, True),
        (503, True),
        (504, True),
        (507, True),
        (520, True),
        (521, True),
        (522, True),
        (523, True),
        (524, True),
        (599, True),
        (600, False),
    ],
)
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    assert retryable_status(status) is retried


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: error(408, "request_timeout"), id="408"),
        pytest.param(lambda: httpx.Response(425, text="too early"), id="425"),
        pytest.param(lambda: error(429, "rate_limited"), id="429"),
        pytest.param(lambda: error(500, "internal_error"), id="500"),
        pytest.param(lambda: httpx.Response(502, text="<html>502 Bad Gateway</html>"), id="502"),
        pytest.param(lambda: error(503, "store_unavailable"), id="503"),
        pytest.param(lambda: httpx.Response(504, text="<html>timeout</html>"), id="504"),
        pytest.param(lambda: httpx.Response(520, text="<html>cloudflare</html>"), id="520"),
        pytest.param(lambda: httpx.Response(524, text=""), id="524"),
    ],
)
async def test_each_transient_answer_is_retried_then_the_submit_succeeds(
    failure: Callable[[], httpx.Response], waits: list[float]
) -> None:
    transport, seen = scripted([failure(), httpx.Response(202, json=RECORD)])
    async with client(transport) as relay:
        outcome = await submit(relay)
    assert outcome.status == "accepted"
    assert len(seen) == 2 and seen[0].content == seen[1].content
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        pytest.param(error(401, "unauthorized"), AuthenticationError, id="401"),
        pytest.param(error(409, "workflow_id_conflict"), ConflictError, id="409"),
        pytest.param(error(413, "payload_too_large"), PayloadTooLargeError, id="413"),
        pytest.param(error(422, "invalid_results"), ValidationError, id="422"),
        pytest.param(error(400, "bad_request"), APIError, id="400"),
    ],
)
async def test_a_refusal_is_raised_at_once_and_never_spooled(
    answer: httpx.Response, raised: type[APIError], tmp_path: Path, waits: list[float]
) -> None:
    transport, seen = scripted([answer])
    async with client(transport, spool_dir=tmp_path / "spool") as relay:
        with pytest.raises(raised) as caught:
            await submit(relay)
    assert caught.value.status_code == answer.status_code
    assert len(seen) == 1 and waits == []
    assert not (tmp_path / "spool").exists()


def busy(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(
        429, headers=headers, json={"error": {"code": "rate_limited", "message": "slow down"}}
    )


async def test_a_429_is_retried_after_its_retry_after_then_succeeds(waits: list[float]) -> None:
    transport, seen = scripted([busy("2"), httpx.Response(202, json=RECORD)])
    async with client(transport) as relay:
        outcome = await submit(relay)
    assert outcome.status == "accepted" and len(seen) == 2
    assert waits == [2.0]


async def test_a_429_retry_after_beyond_the_backoff_cap_is_still_honoured(
    waits: list[float],
) -> None:
    # FAST_RETRY's cap is 10 ms; a 429's Retry-After is honoured up to max_retry_after (60 s)
    transport, _ = scripted([busy("30"), httpx.Response(202, json=RECORD)])
    async with client(transport) as relay:
        await submit(relay)
    assert waits == [30.0]


async def test_a_5xx_retry_after_stays_under_the_cap(waits: list[float]) -> None:
    unavailable = httpx.Response(503, headers={"Retry-After": "30"}, text="down")
    transport, _ = scripted([unavailable, httpx.Response(202, json=RECORD)])
    policy = RetryPolicy(attempts=2, base=0.01, cap=5.0)
    async with client(transport, retries=policy) as relay:
        await submit(relay)
    assert waits == [5.0]


async def test_a_429_retry_after_as_an_http_date_is_honoured(waits: list[float]) -> None:
    retry_at = formatdate(time.time() + 20, usegmt=True)
    transport, _ = scripted([busy(retry_at), httpx.Response(202, json=RECORD)])
    async with client(transport) as relay:
        await submit(relay)
    [wait] = waits
    assert 18.0 <= wait <= 20.0


async def test_429s_until_the_retries_run_out_spool_the_exact_body(
    tmp_path: Path, waits: list[float]
) -> None:
    spool_dir = tmp_path / "spool"
    transport, seen = scripted([busy("1")] * FAST_RETRY.attempts)
    async with client(transport, spool_dir=spool_dir) as relay:
        outcome = await submit(relay)
    # then the result is spooled, with why, and the key is nowhere in it
    assert outcome.status == "spooled" and outcome.path is not None
    assert (outcome.status_code, outcome.error_code) == (429, "rate_limited")
    assert outcome.error is not None and "429" in outcome.error and KEY not in outcome.error
    assert len(seen) == FAST_RETRY.attempts and waits == [1.0, 1.0]
    # and the spool file holds exactly the body that was sent
    [path] = Spool(spool_dir).pending()
    assert path == outcome.path
    assert json.loads(path.read_bytes())["body"] == json.loads(seen[-1].content)
    # which a later flush sends byte for byte
    transport, resent = scripted([httpx.Response(202, json=RECORD)])
    async with client(transport, spool_dir=spool_dir) as relay:
        report = await relay.flush_spool()
    assert (report.accepted, report.remaining) == (1, 0)
    assert resent[0].content == seen[0].content


async def test_a_429_asking_for_more_than_max_retry_after_spools_at_once(
    tmp_path: Path, waits: list[float]
) -> None:
    transport, seen = scripted([busy("3600")])
    async with client(transport, spool_dir=tmp_path / "spool") as relay:
        outcome = await submit(relay)
    assert outcome.status == "spooled" and outcome.status_code == 429
    assert len(seen) == 1 and waits == []


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: httpx.Response(502, text="<html>bad gateway</html>"), id="502"),
        pytest.param(lambda: error(408, "request_timeout"), id="408"),
        pytest.param(lambda: httpx.ReadTimeout("slow"), id="timeout"),
    ],
)
async def test_every_transient_failure_ends_in_the_spool(
    failure: Callable[[], Answer], tmp_path: Path, waits: list[float]
) -> None:
    transport, seen = scripted([failure() for _ in range(FAST_RETRY.attempts)])
    async with client(transport, spool_dir=tmp_path / "spool") as relay:
        outcome = await submit(relay)
    assert outcome.status == "spooled" and len(seen) == FAST_RETRY.attempts
    assert outcome.error_code is not None and KEY not in (outcome.error or "")
    assert len(Spool(tmp_path / "spool").pending()) == 1


async def test_429s_without_a_spool_raise_the_api_error(waits: list[float]) -> None:
    transport, seen = scripted([busy()] * FAST_RETRY.attempts)
    async with client(transport) as relay:
        with pytest.raises(APIError) as caught:
            await submit(relay)
    assert (caught.value.status_code, caught.value.code) == (429, "rate_limited")
    assert len(seen) == FAST_RETRY.attempts


async def test_a_flush_answered_429_keeps_the_file(tmp_path: Path, waits: list[float]) -> None:
    spool_dir = tmp_path / "spool"
    transport, _ = scripted([httpx.ConnectError("refused")] * FAST_RETRY.attempts)
    async with client(transport, spool_dir=spool_dir) as relay:
        assert (await submit(relay)).spooled
    transport, _ = scripted([busy("1")] * FAST_RETRY.attempts)
    async with client(transport, spool_dir=spool_dir) as relay:
        report = await relay.flush_spool()
    assert (report.sent, report.rejected, report.remaining) == (0, 0, 1)
    assert len(Spool(spool_dir).pending()) == 1


async def test_redeliver_is_not_retried_on_a_429(waits: list[float]) -> None:
    # a redeliver is not idempotent: only a request that surely never left is sent again
    transport, seen = scripted([busy("1")])
    async with client(transport) as relay:
        with pytest.raises(APIError):
            await relay.redeliver("wf_1")
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: go now
        ("Wed, 21 Oct 2015 07:29:00 -0000", 60.0),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(
    value: str | None, seconds: float | None
) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now=now) == seconds


def test_max_retry_after_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retry_after=-1)
