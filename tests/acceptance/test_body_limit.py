"""RELAY_MAX_BODY_BYTES: oversized bodies get 413 early, and nothing of them is stored.

One server with a 4 KiB limit serves the whole module; each test uses its own workflow ids.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import API_KEY, Relay, Server, auth, submission

pytestmark = pytest.mark.acceptance

LIMIT = 4096


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path: Path = tmp_path_factory.mktemp("body-limit")
    relay = Relay(tmp_path, f"sqlite:///{tmp_path / 'relay.db'}")
    try:
        yield relay.start({"RELAY_MAX_BODY_BYTES": str(LIMIT)})
    finally:
        relay.stop_all()


def body_of_size(workflow_id: str, size: int) -> bytes:
    """A valid submission serialised to exactly ``size`` bytes (padding in the results)."""
    body = submission(workflow_id, {"padding": ""})
    empty = len(json.dumps(body).encode())
    body["results"] = {"padding": "x" * (size - empty)}
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def chunks(raw: bytes, size: int = 1000) -> Iterator[bytes]:
    # A generator makes httpx send Transfer-Encoding: chunked, with no Content-Length at all.
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def assert_not_stored(server: Server, workflow_id: str) -> None:
    with server.client(headers=auth()) as client:
        assert client.get(f"/v1/results/{workflow_id}").status_code == 404


def assert_payload_too_large(status: int, body: bytes) -> None:
    assert status == 413, body
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"]


def test_declared_length_over_limit_is_refused_without_reading_the_body(limited: Server) -> None:
    # Given a request that declares 100 MB but sends only its first bytes
    host, port = limited.base_url.removeprefix("http://").split(":")
    head = (
        "POST /v1/results HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n"
        "\r\n"
        '{"workflow_id": "wf-declared-huge", "results": {"x": "'
    ).encode()
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        # When the server answers (it must, without waiting for the other 99.99 MB)
        response = _read_until_closed(sock)
    elapsed = time.monotonic() - started

    # Then it is a quick 413 payload_too_large that closes the connection
    status_line, _, rest = response.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert int(status_line.split()[1]) == 413, response
    assert_payload_too_large(413, body)
    assert b"connection: close" in headers.lower()
    assert elapsed < 2.0
    assert_not_stored(limited, "wf-declared-huge")


def _read_until_closed(sock: socket.socket) -> bytes:
    # The 413 carries Connection: close, so end of stream marks the end of the answer; a
    # server that waited for the declared body would hit the socket timeout instead.
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # a reset after the answer (unread bytes on the server side) ends it just as well
    return data


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_body_one_byte_over_limit_is_refused(limited: Server, transfer: str) -> None:
    # Given a valid submission one byte larger than the limit
    workflow_id = f"wf-over-{transfer}"
    raw = body_of_size(workflow_id, LIMIT + 1)
    content = raw if transfer == "content-length" else chunks(raw)
    headers = {**auth(), "Content-Type": "application/json"}

    # When it is posted with a Content-Length, or chunked with none
    with limited.client() as client:
        response = client.post("/v1/results", content=content, headers=headers)

    # Then it is 413 payload_too_large, and nothing was stored
    assert_payload_too_large(response.status_code, response.content)
    assert_not_stored(limited, workflow_id)


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_body_at_exactly_the_limit_is_accepted(limited: Server, transfer: str) -> None:
    # Given a valid submission of exactly RELAY_MAX_BODY_BYTES bytes
    workflow_id = f"wf-at-limit-{transfer}"
    raw = body_of_size(workflow_id, LIMIT)
    content = raw if transfer == "content-length" else chunks(raw)
    headers = {**auth(), "Content-Type": "application/json"}

    # When it is posted
    with limited.client() as client:
        response = client.post("/v1/results", content=content, headers=headers)
        # Then it is accepted and reads back whole
        assert response.status_code == 202, response.text
        stored = client.get(f"/v1/results/{workflow_id}", headers=auth())
    assert stored.json()["results"] == json.loads(raw)["results"]
