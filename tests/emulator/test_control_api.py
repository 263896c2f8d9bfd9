"""The `/_emulator` control API mirrors the Python control methods."""

from __future__ import annotations

import base64

import httpx

from service.testing import DiscordEmulator
from tests.emulator.support import body, multipart


async def test_webhook_lifecycle_over_http(discord: httpx.AsyncClient) -> None:
    # given a webhook and a thread created over HTTP
    created = await discord.post("/_emulator/webhooks", json={"name": "results"})
    assert created.status_code == 201
    hook = created.json()
    assert hook["url"] == f"https://discord.com/api/webhooks/{hook['id']}/{hook['token']}"
    thread = (await discord.post(f"/_emulator/webhooks/{hook['id']}/threads")).json()["thread_id"]
    # when a file is posted into the thread
    path = f"/api/v10/webhooks/{hook['id']}/{hook['token']}?wait=true&thread_id={thread}"
    payload = body(content="x", attachments=[{"id": 0}])
    assert (await discord.post(path, **multipart(payload, ("r.txt", b"report")))).status_code == 200
    # then the control API shows it, bytes included
    listed = await discord.get(f"/_emulator/webhooks/{hook['id']}/messages?thread_id={thread}")
    [message] = listed.json()["messages"]
    assert message["content"] == "x"
    assert base64.b64decode(message["attachments"][0]["data"]) == b"report"
    # and a deleted webhook answers 404 on the Discord side
    assert (await discord.delete(f"/_emulator/webhooks/{hook['id']}")).status_code == 204
    assert (await discord.post(path, json=body(content="x"))).status_code == 404


async def test_interactions_over_http(discord: httpx.AsyncClient) -> None:
    created = await discord.post("/_emulator/interactions", json={"age_seconds": 60})
    interaction = created.json()
    assert created.status_code == 201
    path = f"/api/v10/webhooks/{interaction['application_id']}/{interaction['token']}"
    await discord.post(path, json=body(content="follow"))
    await discord.patch(f"{path}/messages/@original", json=body(content="orig"))
    iid = interaction["interaction_id"]
    followups = (await discord.get(f"/_emulator/interactions/{iid}/followups")).json()
    assert [m["content"] for m in followups["messages"]] == ["follow"]
    original = (await discord.get(f"/_emulator/interactions/{iid}/original")).json()
    assert original["content"] == "orig"


async def test_limits_faults_and_counters_over_http(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    limits = await discord.put("/_emulator/limits", json={"webhook": [1, 3.5]})
    assert limits.json()["webhook"] == [1, 3.5]
    assert emulator.limits["webhook"] == (1, 3.5)
    fault = await discord.post("/_emulator/faults", json={"kind": "503", "count": 2})
    assert fault.status_code == 201
    assert (await discord.get("/_emulator/faults")).json()["faults"][0]["count"] == 2
    assert (await discord.delete("/_emulator/faults")).status_code == 204
    assert emulator.pending_faults() == []
    hook = (await discord.post("/_emulator/webhooks", json={})).json()
    await discord.post(f"/api/v10/webhooks/{hook['id']}/{hook['token']}", json={"content": "x"})
    counters = (await discord.get("/_emulator/counters")).json()
    assert counters["total_requests"] == 1
    assert counters["bad_allowed_mentions"] == 1
    assert (await discord.post("/_emulator/counters/reset")).status_code == 204
    assert emulator.counters.total_requests == 0


async def test_control_requests_are_not_counted_as_discord_traffic(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    await discord.get("/_emulator/health", headers={"User-Agent": "curl/8"})
    assert emulator.counters.total_requests == 0
    assert emulator.counters.bad_user_agent == 0


async def test_bad_control_input_is_refused(discord: httpx.AsyncClient) -> None:
    assert (await discord.post("/_emulator/faults", json={"kind": "teapot"})).status_code == 400
    assert (await discord.put("/_emulator/limits", json={"webhook": 5})).status_code == 400
    assert (await discord.post("/_emulator/webhooks", content=b"[")).status_code == 400
    assert (await discord.delete("/_emulator/webhooks/123")).status_code == 404
    assert (await discord.get("/_emulator/interactions/123/original")).status_code == 404
