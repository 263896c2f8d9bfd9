"""Rate limits, faults and counters of the bot-token routes."""

from __future__ import annotations

import httpx
import pytest

from service.testing import (
    ConnectionDropped,
    DiscordEmulator,
    EmulatedBot,
    EmulatedChannel,
    EmulatedWebhook,
)
from tests.emulator.support import FakeClock, body, bot_auth, channel_path, hook_path

CREATE = "POST /channels/{channel_id}/messages"


async def create(http: httpx.AsyncClient, bot: EmulatedBot, channel_id: str) -> httpx.Response:
    return await http.post(channel_path(channel_id), json=body(content="r"), headers=bot_auth(bot))


async def read(http: httpx.AsyncClient, bot: EmulatedBot, channel_id: str) -> httpx.Response:
    return await http.get(channel_path(channel_id), headers=bot_auth(bot))


# -- buckets ---------------------------------------------------------------------------------


async def test_create_message_announces_its_bucket_and_refuses_when_empty(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    # given the default bucket of 5 per 5 s
    answers = [await create(discord, bot, channel.id) for _ in range(5)]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["4", "3", "2", "1", "0"]
    last = answers[-1].headers
    assert last["X-RateLimit-Limit"] == "5"
    assert float(last["X-RateLimit-Reset-After"]) == pytest.approx(5.0)
    assert float(last["X-RateLimit-Reset"]) == pytest.approx(1_790_000_005.0)
    # when a sixth comes at once
    refused = await create(discord, bot, channel.id)
    # then Discord answers a user-scoped 429 in its shape, and stores nothing more
    assert refused.status_code == 429
    assert refused.json() == {
        "message": "You are being rate limited.",
        "retry_after": 5.0,
        "global": False,
    }
    assert refused.headers["X-RateLimit-Scope"] == "user"
    assert refused.headers["Retry-After"] == "5"
    assert len(emulator.channel_messages(channel.id)) == 5
    counters = emulator.counters
    assert counters.rate_limited["user"] == 1
    assert counters.premature_requests == 1  # it came after Remaining 0, before the reset


async def test_buckets_are_per_channel_and_per_bot_with_one_hash_per_route(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    emulator.set_limits(bot_route=(1, 5.0))
    other_channel = emulator.create_channel()
    other_bot = emulator.create_bot()
    first = await create(discord, bot, channel.id)
    # a second channel, a second bot, and another route each have a bucket of their own
    for response in (
        await create(discord, bot, other_channel.id),
        await create(discord, other_bot, channel.id),
        await read(discord, bot, channel.id),
    ):
        assert response.status_code == 200
    assert (await create(discord, bot, channel.id)).status_code == 429
    # and the bucket name is the route's, the same for every channel and bot
    same_route = (await create(discord, other_bot, other_channel.id)).headers
    assert first.headers["X-RateLimit-Bucket"] == same_route["X-RateLimit-Bucket"]
    reading = (await read(discord, other_bot, other_channel.id)).headers
    assert reading["X-RateLimit-Bucket"] != first.headers["X-RateLimit-Bucket"]


async def test_waiting_the_announced_reset_after_is_never_premature(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
    mono: FakeClock,
) -> None:
    emulator.set_limits(bot_route=(2, 5.0))
    await create(discord, bot, channel.id)
    last = await create(discord, bot, channel.id)
    mono.now += float(last.headers["X-RateLimit-Reset-After"])
    response = await create(discord, bot, channel.id)
    assert (response.status_code, response.headers["X-RateLimit-Remaining"]) == (200, "1")
    assert emulator.counters.premature_requests == 0


async def test_each_bot_has_its_own_global_limit(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    emulator: DiscordEmulator,
    mono: FakeClock,
) -> None:
    # given a global limit of 3 per second and a channel per request
    emulator.set_limits(bot_global=(3, 1.0))
    channels = [emulator.create_channel().id for _ in range(5)]
    for channel_id in channels[:3]:
        assert (await create(discord, bot, channel_id)).status_code == 200
    # when the bot makes a fourth request in that second
    refused = await create(discord, bot, channels[3])
    # then Discord answers a global 429
    assert refused.status_code == 429
    assert refused.json()["global"] is True
    assert refused.headers["X-RateLimit-Global"] == "true"
    assert refused.headers["X-RateLimit-Scope"] == "global"
    assert emulator.counters.rate_limited["global"] == 1
    # and another bot is not held back, nor a webhook
    assert (await create(discord, emulator.create_bot(), channels[3])).status_code == 200
    hook = emulator.create_webhook()
    assert (await discord.post(hook_path(hook), json=body(content="w"))).status_code == 200
    mono.now += 1.0
    assert (await create(discord, bot, channels[4])).status_code == 200


async def test_bot_limits_over_the_control_api_keep_the_old_keys(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    response = await discord.put(
        "/_emulator/limits", json={"bot_route": [2, 1], "bot_global": [9, 1.5], "webhook": [3, 2]}
    )
    assert response.status_code == 200
    limits = response.json()
    assert (limits["bot_route"], limits["bot_global"], limits["webhook"]) == (
        [2, 1],
        [9, 1.5],
        [3, 2],
    )
    assert limits["dm_open"] == [10, 10]
    assert emulator.limits["bot_route"] == (2, 1.0)
    refused = await discord.put("/_emulator/limits", json={"bots": [1, 1]})
    assert refused.status_code == 400


# -- faults ----------------------------------------------------------------------------------


async def test_a_dropped_answer_to_a_create_message_leaves_the_message_stored(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    # given a fault aimed at the channel: Discord stores the message, the answer is lost
    other = emulator.create_channel()
    emulator.inject_fault("drop_after_store", channel_id=channel.id)
    # (a request to another channel passes it by)
    assert (await create(discord, bot, other.id)).status_code == 200
    # when the bot posts there
    with pytest.raises(ConnectionDropped):
        await create(discord, bot, channel.id)
    # then the message is in the channel, where reading finds it
    [stored] = emulator.channel_messages(channel.id)
    page = (await read(discord, bot, channel.id)).json()
    assert [m["id"] for m in page] == [stored.id]
    assert emulator.pending_faults() == []


async def test_a_refused_create_message_gives_the_after_store_fault_back(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    emulator.inject_fault("drop_after_store", channel_id=channel.id)
    empty = await discord.post(channel_path(channel.id), json=body(), headers=bot_auth(bot))
    assert empty.json()["code"] == 50006
    assert [f.channel_id for f in emulator.pending_faults()] == [channel.id]


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503), ("502_html", 502)])
async def test_pre_store_faults_hit_bot_requests_and_store_nothing(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
    kind: str,
    status: int,
) -> None:
    emulator.inject_fault(kind, channel_id=channel.id)
    assert (await create(discord, bot, channel.id)).status_code == status
    assert emulator.channel_messages(channel.id) == []


async def test_a_channel_fault_also_meets_the_webhooks_of_that_channel(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("503", channel_id=webhook.channel_id)
    assert (await discord.post(hook_path(webhook), json=body(content="x"))).status_code == 503


async def test_a_30046_fault_refuses_the_next_bot_edit_in_the_channel(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    message_id = (await create(discord, bot, channel.id)).json()["id"]
    emulator.inject_fault("30046", channel_id=channel.id)
    assert (await create(discord, bot, channel.id)).status_code == 200  # not an edit
    path = channel_path(channel.id, f"/{message_id}")
    edit = await discord.patch(path, json=body(content="e"), headers=bot_auth(bot))
    assert (edit.status_code, edit.json()["code"]) == (400, 30046)
    assert emulator.edits(message_id) == []


async def test_faults_aimed_at_a_channel_over_the_control_api(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    response = await discord.post(
        "/_emulator/faults", json={"kind": "drop_after_store", "channel_id": "1300000000000000001"}
    )
    assert response.status_code == 201
    assert response.json()["channel_id"] == "1300000000000000001"
    assert emulator.pending_faults()[0].channel_id == "1300000000000000001"
    bad = await discord.post("/_emulator/faults", json={"kind": "500", "channel_id": "general"})
    assert bad.status_code == 400


# -- counters --------------------------------------------------------------------------------


async def test_counters_keep_their_old_fields_and_add_the_bot_ones(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    await create(discord, bot, channel.id)
    await read(discord, bot, channel.id)
    await discord.get("/api/v10/users/@me")
    counters = (await discord.get("/_emulator/counters")).json()
    assert counters["bot_requests"] == {
        CREATE: 1,
        "GET /channels/{channel_id}/messages": 1,
        "GET /users/@me": 1,
    }
    assert counters["unauthorized"] == 1
    assert counters["refusals"] == {"0": 1}
    for old in ("total_requests", "payload_400s", "premature_requests", "rate_limited", "edits"):
        assert old in counters
    assert counters["total_requests"] == 3
    emulator.reset_counters()
    assert emulator.counters.bot_requests == {}
