"""The ``result-relay`` command line: keys, purge and help, on the database a server uses."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from service.store.sqlite import SQLiteStore
from tests.support import CIPHER

from ._support import TENANT, Relay, auth, submission

pytestmark = pytest.mark.acceptance


def test_created_key_works_until_revoked(relay: Relay) -> None:
    # Given a key made with `keys create` on the database the server uses
    server = relay.start()
    created = relay.cli("keys", "create", "--tenant", "t2", "--label", "x")
    key_id = re.search(r"^key id: (\S+)$", created.stdout, re.MULTILINE)
    secret = re.search(r"^api key: (\S+)$", created.stdout, re.MULTILINE)
    assert key_id and secret, created.stdout
    key_id_text, secret_text = key_id[1], secret[1]

    # When the bot uses it
    with server.client(headers=auth(secret_text)) as client:
        accepted = client.post("/v1/results", json=submission("wf-t2"))
        # Then it authenticates as tenant t2, which sees its own results only
        assert accepted.status_code == 202, accepted.text
        assert client.get("/v1/results/wf-t2").status_code == 200
    with server.client(headers=auth()) as other_tenant:
        assert other_tenant.get("/v1/results/wf-t2").status_code == 404

    # And `keys list` shows the key, its tenant and label, and never the secret
    listed = relay.cli("keys", "list").stdout
    row = next(line for line in listed.splitlines() if line.startswith(key_id_text))
    assert row.split()[1] == "t2"
    assert row.split()[-1] == "x"
    assert secret_text not in listed
    assert secret_text.removeprefix(f"rr_{key_id_text}_") not in listed  # not even its secret part

    # When the key is revoked (a fresh server, so no auth cache can still hold it)
    assert relay.cli("keys", "revoke", key_id_text).stdout.strip() == f"revoked {key_id_text}"
    server.stop()
    server = relay.start()

    # Then it is refused with 401, and the listing shows when it was revoked
    with server.client(headers=auth(secret_text)) as client:
        refused = client.get("/v1/results/wf-t2")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    row = next(
        line for line in relay.cli("keys", "list").stdout.splitlines() if key_id_text in line
    )
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+\d{4}-\d\d-\d\d", row), row

    # And revoking it again is an error that says so
    again = relay.cli("keys", "revoke", key_id_text, check=False)
    assert again.returncode == 1
    assert key_id_text in again.stderr


def test_purge_removes_only_settled_results_past_retention(relay: Relay) -> None:
    # Given three results accepted over the API, two of which the delivery side has since
    # given up on (orphaned through the store API, on the same file; the worker is off so
    # that it does not race the test for them)
    server = relay.start({"RELAY_WORKER_ENABLED": "false"})
    with server.client(headers=auth()) as client:
        for workflow_id in ("wf-orphaned-1", "wf-orphaned-2", "wf-pending"):
            assert client.post("/v1/results", json=submission(workflow_id)).status_code == 202
    _orphan(relay.tmp_path / "relay.db", "wf-orphaned-1", "wf-orphaned-2")
    with server.client(headers=auth()) as client:
        assert client.get("/v1/results/wf-orphaned-1").json()["status"] == "orphaned"

    # When purge runs with the default retention (30 days), nothing is old enough
    kept = relay.cli("purge")
    assert kept.stdout.strip() == "purged 0 result(s) older than 30 days"

    # When purge runs with --older-than-days 0, while the server keeps running
    purged = relay.cli("purge", "--older-than-days", "0")

    # Then it reports the two orphaned results, and only the pending one remains
    assert purged.stdout.strip() == "purged 2 result(s) older than 0 days"
    with server.client(headers=auth()) as client:
        assert client.get("/v1/results/wf-orphaned-1").status_code == 404
        assert client.get("/v1/results/wf-orphaned-2").status_code == 404
        pending = client.get("/v1/results/wf-pending")
        assert pending.status_code == 200
        assert pending.json()["status"] == "pending"
        listing = client.get("/v1/results").json()["items"]
    assert [item["workflow_id"] for item in listing] == ["wf-pending"]


def _orphan(database: Path, *workflow_ids: str) -> None:
    async def orphan() -> None:
        store = SQLiteStore(str(database), cipher=CIPHER)
        await store.open()
        try:
            for workflow_id in workflow_ids:
                await store.orphan(TENANT, workflow_id, reason="webhook_dead", now=time.time())
        finally:
            await store.close()

    asyncio.run(orphan())


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ([], ["serve", "keys", "secrets", "purge", "--version"]),
        (["serve"], ["--host", "--port"]),
        (["keys"], ["create", "list", "revoke"]),
        (["keys", "create"], ["--tenant", "--label"]),
        (["purge"], ["--older-than-days"]),
        (["secrets"], ["generate", "rotate", "RELAY_SECRET_KEY_PREVIOUS", "secret.key"]),
        (["secrets", "generate"], ["export RELAY_SECRET_KEY=$(result-relay secrets generate)"]),
        (["secrets", "rotate"], ["RELAY_SECRET_KEY_PREVIOUS", "batches", "again"]),
    ],
    ids=[
        "result-relay",
        "serve",
        "keys",
        "keys-create",
        "purge",
        "secrets",
        "secrets-generate",
        "secrets-rotate",
    ],
)
def test_help_exits_zero_and_names_the_options(
    relay: Relay, args: list[str], names: list[str]
) -> None:
    # Given the installed command, when asked for help
    result = relay.cli(*args, "--help")
    # Then it exits 0 and names every option, without touching the database
    for name in names:
        assert name in result.stdout
    assert not (relay.tmp_path / "relay.db").exists()
