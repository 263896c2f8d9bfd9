"""The real process under hostile input: every bad request gets a clear 4xx, never a 5xx, and
stores nothing; a result built to become hundreds of messages reaches Discord as at most ten.

One server (SQLite, delivering to the Discord emulator over a socket) serves the module. The
same rules on PostgreSQL are covered by ``tests/integration/test_api_faithful.py``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.testing import DiscordEmulator, EmulatorServer

from ._support import API_KEY, FAKE_TOKEN, WEBHOOK_ID, Relay, Server, auth, submission, wait_until

pytestmark = pytest.mark.acceptance

MAX_BODY = 512 * 1024
IN_FLIGHT = 1024 * 1024
URL = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{FAKE_TOKEN}"


@pytest.fixture(scope="module")
def discord() -> Iterator[tuple[DiscordEmulator, EmulatorServer]]:
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as server:
        yield emulator, server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, discord: tuple[DiscordEmulator, EmulatorServer]
) -> Iterator[Server]:
    tmp_path: Path = tmp_path_factory.mktemp("hostile")
    relay = Relay(tmp_path, f"sqlite:///{tmp_path / 'relay.db'}")
    try:
        yield relay.start(
            {
                "RELAY_DISCORD_API_BASE": discord[1].api_base,
                "RELAY_MAX_BODY_BYTES": str(MAX_BODY),
                "RELAY_MAX_INFLIGHT_BYTES": str(IN_FLIGHT),
                "RELAY_POLL_SECONDS": "0.2",
            }
        )
    finally:
        relay.stop_all()


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def raw(results: str, workflow_id: str = "wf-hostile", url: str = URL) -> bytes:
    return (
        f'{{"workflow_id": {json.dumps(workflow_id)}, "results": {results}, '
        f'"destination": {{"webhook_url": {json.dumps(url)}}}}}'
    ).encode()


HOSTILE: list[tuple[str, dict[str, str], bytes, int, str, str | None]] = [
    # (case, headers, body, status, code, field)
    ("no key, malformed body", {}, b"{not json", 401, "unauthorized", None),
    (
        "wrong key, huge nesting",
        auth("nope-nope-nope-nope"),
        raw(deep(50_000)),
        401,
        "unauthorized",
        None,
    ),
    (
        "lone surrogate",
        auth(),
        raw('{"note": "\\ud800"}'),
        422,
        "unpaired_surrogate",
        "results.note",
    ),
    ("surrogate in a key", auth(), raw('{"\\udc00": 1}'), 422, "unpaired_surrogate", None),
    ("NaN", auth(), raw('{"score": NaN}'), 422, "non_finite_number", "results.score"),
    ("Infinity", auth(), raw('{"s": [1, Infinity]}'), 422, "non_finite_number", "results.s.1"),
    ("-Infinity", auth(), raw('{"s": -Infinity}'), 422, "non_finite_number", "results.s"),
    ("65 levels", auth(), raw('{"a": ' + deep(63) + "}"), 422, "too_deep", None),
    ("100 000 levels", auth(), raw('{"a": ' + deep(100_000) + "}"), 422, "too_deep", "body"),
    ("workflow id '.'", auth(), raw("{}", workflow_id="."), 422, "invalid_workflow_id", None),
    ("workflow id '..'", auth(), raw("{}", workflow_id=".."), 422, "invalid_workflow_id", None),
    (
        "tab in the URL",
        auth(),
        raw("{}", url=URL.replace("webhooks/", "web\thooks/")),
        422,
        "invalid_webhook_url",
        None,
    ),
    ("newline in the URL", auth(), raw("{}", url=URL + "\n"), 422, "invalid_webhook_url", None),
    (
        "leading zero id",
        auth(),
        raw("{}", url=URL.replace(WEBHOOK_ID, "0" + WEBHOOK_ID[1:])),
        422,
        "invalid_webhook_url",
        None,
    ),
    ("not UTF-8", auth(), b'{"workflow_id": "\xff"}', 422, "malformed_json", "body"),
    (
        "over the size limit",
        auth(),
        raw(json.dumps({"x": "y" * MAX_BODY})),
        413,
        "payload_too_large",
        None,
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "field"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_input_gets_a_clear_4xx_and_stores_nothing(
    server: Server,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
    field: str | None,
) -> None:
    # when the hostile request is sent
    with server.client() as client:
        answer = client.post(
            "/v1/results", content=body, headers={**headers, "Content-Type": "application/json"}
        )
        # then it is the 4xx that names the rule (and the place), never a 5xx
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["code"] == code and error["message"]
        if field is not None:
            assert error["details"][0]["field"] == field
        assert FAKE_TOKEN not in answer.text
        # and nothing of it was stored; the service still answers
        listing = client.get("/v1/results", headers=auth())
        assert listing.status_code == 200
        assert listing.json()["items"] == []
        assert client.get("/readyz").status_code == 200


def test_requests_over_the_bytes_in_flight_get_503_with_retry_after(server: Server) -> None:
    # given three uploads of 400 KB declared at once whose bodies are slow to come (1 MiB budget)
    host, port = server.base_url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/results HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 400000\r\n\r\n"
        '{"workflow_id": "wf-slow", '
    ).encode()
    uploads = [socket.create_connection((host, int(port)), timeout=3) for _ in range(3)]
    try:
        answers: list[bytes] = []
        for sock in uploads:
            sock.sendall(head)
            time.sleep(0.2)  # in order: the first two fit the budget
        for sock in uploads:
            try:
                answers.append(sock.recv(65536))
            except TimeoutError:
                answers.append(b"")  # still reading its body: within the budget
    finally:
        for sock in uploads:
            sock.close()
    # then the one over the budget is refused at once: 503 overloaded, with when to come back
    assert [a.split(b" ", 2)[1] if a else b"" for a in answers] == [b"", b"", b"503"], answers
    refused = answers[2].decode()
    assert "retry-after: " in refused.lower()
    assert '"code":"overloaded"' in refused.replace(" ", "")


def test_a_result_made_to_become_hundreds_of_messages_arrives_as_at_most_ten(
    server: Server, discord: tuple[DiscordEmulator, EmulatorServer]
) -> None:
    # given a bot message of 200 000 characters and 100 embeds (278 parts once split)
    emulator = discord[0]
    hook = emulator.create_webhook()
    body = {
        **submission("wf-long", {"summary": "long"}),
        "destination": {"webhook_url": hook.url},
        "message": {
            "content": "\n\n".join(f"Paragraph {n}. " + "word " * 150 for n in range(260)),
            "embeds": [{"title": f"embed {n}", "description": "d" * 300} for n in range(100)],
        },
    }
    with server.client(headers=auth()) as client:
        assert client.post("/v1/results", json=body).status_code == 202

        # when it is delivered
        def settled() -> bool:
            return bool(client.get("/v1/results/wf-long").json()["status"] != "pending")

        wait_until(settled, 30, "the long result to be delivered")
        record = client.get("/v1/results/wf-long").json()
    # then Discord received at most ten messages, the whole text attached, nothing refused
    assert record["status"] == "delivered", record
    received = emulator.messages(hook.id)
    assert 1 <= len(received) <= 10
    files = [a.filename for m in received for a in m.attachments]
    assert "content-wf-long.md" in files
    assert emulator.counters.payload_400s == 0
    assert emulator.counters.bad_allowed_mentions == 0
