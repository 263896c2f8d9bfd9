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


async def test_bots_channels_users_and_dms_over_http(discord: httpx.AsyncClient) -> None:
    # given a bot, a channel and two users made over HTTP
    created = await discord.post("/_emulator/bots", json={"username": "relay"})
    assert created.status_code == 201
    bot = created.json()
    assert set(bot) == {"id", "token", "username"}
    auth = {"Authorization": f"Bot {bot['token']}"}
    channel = await discord.post("/_emulator/channels", json={"guild_id": "1300000000000000001"})
    assert channel.status_code == 201
    channel_id = channel.json()["id"]
    assert channel.json()["guild_id"] == "1300000000000000001"
    open_user = (await discord.post("/_emulator/users", json={})).json()
    closed = await discord.post("/_emulator/users", json={"dms_open": False})
    assert (closed.status_code, closed.json()["dms_open"]) == (201, False)
    # when the bot posts in the channel and DMs the first user
    path = f"/api/v10/channels/{channel_id}/messages"
    assert (await discord.post(path, json=body(content="c"), headers=auth)).status_code == 200
    dm = await discord.post(
        "/api/v10/users/@me/channels", json={"recipient_id": open_user["id"]}, headers=auth
    )
    dm_path = f"/api/v10/channels/{dm.json()['id']}/messages"
    assert (await discord.post(dm_path, json=body(content="d"), headers=auth)).status_code == 200
    # then the control API shows both, with their author
    [posted] = (await discord.get(f"/_emulator/channels/{channel_id}/messages")).json()["messages"]
    assert (posted["content"], posted["bot_id"], posted["webhook_id"]) == ("c", bot["id"], None)
    [sent] = (await discord.get(f"/_emulator/users/{open_user['id']}/dms")).json()["messages"]
    assert sent["content"] == "d"
    # and access and DM settings change over HTTP too
    access = {"bot_id": bot["id"], "view": True, "send": False, "read_history": True}
    put = await discord.put(f"/_emulator/channels/{channel_id}/access", json=access)
    assert put.status_code == 204
    refused = await discord.post(path, json=body(content="c"), headers=auth)
    assert refused.json()["code"] == 50013
    updated = await discord.put(f"/_emulator/users/{open_user['id']}", json={"dms_open": False})
    assert updated.json() == {"id": open_user["id"], "dms_open": False}
    assert (await discord.post(dm_path, json=body(content="d"), headers=auth)).status_code == 403


async def test_a_webhooks_channel_is_a_channel_of_the_control_api(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    hook = (await discord.post("/_emulator/webhooks", json={})).json()
    await discord.post(f"/api/v10/webhooks/{hook['id']}/{hook['token']}", json=body(content="w"))
    listed = await discord.get(f"/_emulator/channels/{hook['channel_id']}/messages")
    assert [m["webhook_id"] for m in listed.json()["messages"]] == [hook["id"]]
    taken = await discord.post("/_emulator/channels", json={"channel_id": hook["channel_id"]})
    assert taken.status_code == 400


async def test_bad_bot_control_input_is_refused(discord: httpx.AsyncClient) -> None:
    bot = (await discord.post("/_emulator/bots", json={})).json()
    channel_id = (await discord.post("/_emulator/channels", json={})).json()["id"]
    access = f"/_emulator/channels/{channel_id}/access"
    assert (await discord.put(access, json={"view": False})).status_code == 400
    assert (await discord.put(access, json={"bot_id": bot["id"], "view": "no"})).status_code == 400
    unknown_bot = {"bot_id": "1300000000000000001", "view": False}
    assert (await discord.put(access, json=unknown_bot)).status_code == 404
    unknown_channel = "/_emulator/channels/1300000000000000001/access"
    assert (await discord.put(unknown_channel, json={"bot_id": bot["id"]})).status_code == 404
    assert (
        await discord.put("/_emulator/users/1300000000000000001", json={"dms_open": True})
    ).status_code == 404
    assert (await discord.post("/_emulator/channels", json={"guild_id": "abc"})).status_code == 400
