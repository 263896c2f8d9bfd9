"""Discord's error table: every answer (or missing answer) maps to one disposition."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from service.discord.outcome import Disposition, classify, classify_transport, describe_transport


@pytest.mark.parametrize(
    ("status", "code", "disposition"),
    [
        (200, None, Disposition.DELIVERED),
        (204, None, Disposition.DELIVERED),
        (429, None, Disposition.RATE_LIMITED),
        (404, 10015, Disposition.DEAD_WEBHOOK),
        (401, 50027, Disposition.DEAD_WEBHOOK),
        (404, 10003, Disposition.PERMANENT),
        (404, 10008, Disposition.PERMANENT),
        (403, 50001, Disposition.PERMANENT),
        (403, 50013, Disposition.PERMANENT),
        (400, 50035, Disposition.PERMANENT),
        (400, 50006, Disposition.PERMANENT),
        (413, 40005, Disposition.PERMANENT),
        (401, None, Disposition.PERMANENT),
        (500, None, Disposition.TRANSIENT),
        (502, None, Disposition.TRANSIENT),
        (503, None, Disposition.TRANSIENT),
        (504, None, Disposition.TRANSIENT),
        (520, None, Disposition.TRANSIENT),
        (524, None, Disposition.TRANSIENT),
        (408, None, Disposition.TRANSIENT),
    ],
)
def test_each_status_and_code_has_one_disposition(
    status: int, code: int | None, disposition: Disposition
) -> None:
    assert classify(status, code) is disposition


REQUEST = httpx.Request("POST", "https://discord.test/api/v10/webhooks/1/t")


@pytest.mark.parametrize(
    ("error", "disposition"),
    [
        (httpx.ConnectError("refused", request=REQUEST), Disposition.TRANSIENT),
        (httpx.ConnectTimeout("slow", request=REQUEST), Disposition.TRANSIENT),
        (httpx.PoolTimeout("busy", request=REQUEST), Disposition.TRANSIENT),
        (httpx.WriteError("reset", request=REQUEST), Disposition.TRANSIENT),
        (httpx.WriteTimeout("slow", request=REQUEST), Disposition.TRANSIENT),
        (httpx.ReadTimeout("no answer", request=REQUEST), Disposition.AMBIGUOUS),
        (httpx.ReadError("reset", request=REQUEST), Disposition.AMBIGUOUS),
        (httpx.RemoteProtocolError("closed", request=REQUEST), Disposition.AMBIGUOUS),
    ],
)
def test_a_request_that_never_left_is_transient_one_without_an_answer_ambiguous(
    error: httpx.HTTPError, disposition: Disposition
) -> None:
    assert classify_transport(error) is disposition


def _raised(outer: httpx.HTTPError, cause: BaseException | None) -> httpx.HTTPError:
    try:
        raise outer from cause
    except httpx.HTTPError as exc:
        return exc


SECRET_URL = "https://discord.com/api/webhooks/1/SECRET_TOKEN"


@pytest.mark.parametrize(
    ("error", "described"),
    [
        (
            _raised(httpx.ConnectError(SECRET_URL), socket.gaierror(-2, SECRET_URL)),
            "ConnectError: name resolution failed",
        ),
        (
            _raised(httpx.ConnectError(SECRET_URL), ConnectionRefusedError(111, SECRET_URL)),
            "ConnectError: connection refused",
        ),
        (
            _raised(httpx.ConnectError(SECRET_URL), ssl.SSLError(1, SECRET_URL)),
            "ConnectError: TLS handshake failed",
        ),
        (_raised(httpx.ReadTimeout(SECRET_URL), None), "ReadTimeout: no answer within the timeout"),
        (
            _raised(httpx.ConnectTimeout(SECRET_URL), TimeoutError()),
            "ConnectTimeout: no connection within the timeout",
        ),
        (
            _raised(httpx.RemoteProtocolError(SECRET_URL), None),
            "RemoteProtocolError: the server closed the connection",
        ),
        (_raised(httpx.DecodingError(SECRET_URL), None), "DecodingError"),
    ],
)
def test_a_transport_failure_is_described_by_its_cause_never_its_text(
    error: httpx.HTTPError, described: str
) -> None:
    assert describe_transport(error) == described
    assert "SECRET" not in describe_transport(error)


async def test_a_refused_connection_is_described_as_such() -> None:
    # given a port nothing listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # when a request is made to it
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.get(f"http://127.0.0.1:{port}/webhooks/1/SECRET_TOKEN")
    # then the description names the cause
    assert describe_transport(raised.value) == "ConnectError: connection refused"
