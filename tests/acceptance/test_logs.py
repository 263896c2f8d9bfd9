"""The server's stderr: JSON lines, one access line per request, and never a token."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ._support import FAKE_TOKEN, WEBHOOK_ID, Relay, auth, submission

pytestmark = pytest.mark.acceptance

INTERACTION_TOKEN = "I" * 80  # as obviously fake as the webhook token, and as easy to grep for


def test_stderr_is_json_lines_with_one_access_line_per_request_and_no_token(
    relay: Relay,
) -> None:
    # Given a server, and a bot sending requests that carry secrets in several ways
    server = relay.start()
    body = {
        **submission("wf-logs"),
        "interaction": {
            "application_id": "223344556677889900",
            "interaction_id": "1166703283543867452",
            "token": INTERACTION_TOKEN,
        },
    }
    bad_url = f"http://discord.com/api/webhooks/{WEBHOOK_ID}/{FAKE_TOKEN}"  # http: refused
    sent: list[tuple[str, str, int]] = []
    with server.client(headers=auth()) as client:
        for method, path, payload, status in [
            ("POST", "/v1/results", body, 202),
            ("POST", "/v1/results", body, 200),
            ("POST", "/v1/results", {**body, "results": {"other": 1}}, 409),
            ("POST", "/v1/results", {**body, "destination": {"webhook_url": bad_url}}, 422),
            ("GET", "/v1/results/wf-logs", None, 200),
            ("GET", "/v1/results/missing", None, 404),
        ]:
            response = client.request(method, path, json=payload)
            # (Responses never echo a token either: not even the 422 about the bad URL.)
            assert response.status_code == status, response.text
            assert FAKE_TOKEN not in response.text
            assert INTERACTION_TOKEN not in response.text
            sent.append((method, path, status))
        unauthenticated = client.get("/v1/results/wf-logs", headers={"Authorization": "Bearer x"})
        assert unauthenticated.status_code == 401
        sent.append(("GET", "/v1/results/wf-logs", 401))
        # The worker has the tokens too: wait for its first (refused) delivery attempt, so
        # whatever it logs about a failed send is in stderr as well.
        deadline = time.monotonic() + 10
        while True:
            attempts = client.get("/v1/results/wf-logs/attempts")
            sent.append(("GET", "/v1/results/wf-logs/attempts", attempts.status_code))
            if attempts.json()["items"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert attempts.json()["items"], "the worker made no delivery attempt"
        assert FAKE_TOKEN not in attempts.text

    # When the server has stopped (so every line is flushed)
    server.stop()
    stderr = server.stderr()

    # Then every line is a JSON object with a level and a message
    entries = [_json_object(line) for line in stderr.splitlines() if line.strip()]
    assert entries
    assert all({"ts", "level", "msg"} <= entry.keys() for entry in entries)

    # And there is exactly one `request` line per request, in order, with its facts
    access = [e for e in entries if e["msg"] == "request" and e["path"] != "/healthz"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == sent
    assert all(isinstance(e["duration_ms"], int | float) and e["duration_ms"] >= 0 for e in access)
    assert [e.get("tenant") for e in access] == [
        None if status == 401 else "acme" for _, _, status in sent
    ]

    # And the worker said when it started (which database, how many lanes) and stopped
    started = next(e for e in entries if e["msg"] == "delivery worker started")
    assert started["database"] == f"SQLite at {relay.tmp_path / 'relay.db'}"
    assert started["lanes"] == 64
    assert any(e["msg"] == "delivery worker stopped" for e in entries)
    # And each failed attempt is a warning naming the result, the lane by webhook id, the cause
    failed = next(e for e in entries if e["msg"] == "delivery attempt failed")
    assert failed["level"] == "warning"
    assert (failed["workflow_id"], failed["lane"]) == ("wf-logs", WEBHOOK_ID)
    assert failed["cause"] == "ConnectError: connection refused"

    # And no token appears anywhere in stderr
    assert FAKE_TOKEN not in stderr
    assert INTERACTION_TOKEN not in stderr


def _json_object(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        pytest.fail(f"stderr line is not JSON: {line!r}")
    assert isinstance(entry, dict), line
    return entry
