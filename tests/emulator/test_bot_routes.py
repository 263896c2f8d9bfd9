"""The bot-token routes: Get Current User, Create / Get / Edit Channel Messages, Create DM."""

from __future__ import annotations

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedBot, EmulatedChannel, EmulatedWebhook
from tests.emulator.support import (
    FakeClock,
    body,
    bot_auth,
    channel_path,
    hook_path,
    spec_validator,
)

UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


async def create(
    http: httpx.AsyncClient, bot: EmulatedBot, channel_id: str, **fields: object
) -> httpx.Response:
    return await http.post(channel_path(channel_id), json=body(**fields), headers=bot_auth(bot))


# -- Get Current User ------------------------------------------------------------------------


async def test_get_current_user_answers_the_bot_owning_the_token(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator
) -> None:
    response = await discord.get("/api/v10/users/@me", headers=bot_auth(bot))
    assert response.status_code == 200
    me = response.json()
    assert (me["id"], me["username"], me["bot"]) == (bot.id, "relay", True)
    assert emulator.counters.bot_requests == {"GET /users/@me": 1}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bot not-a-token"},
        {"Authorization": "Bearer x"},
    ],
)
async def test_bot_routes_without_a_valid_bot_token_answer_401(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
    headers: dict[str, str],
) -> None:
    for method, path in (
        ("GET", "/api/v10/users/@me"),
        ("POST", channel_path(channel.id)),
        ("GET", channel_path(channel.id)),
        ("POST", "/api/v10/users/@me/channels"),
    ):
        response = await discord.request(method, path, json=body(content="x"), headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
    assert emulator.counters.unauthorized == 4
    assert emulator.counters.requests_after_401 == 3  # the same bad credentials, again
    assert emulator.channel_messages(channel.id) == []


async def test_the_token_of_a_bot_looks_like_discords() -> None:
    bot = DiscordEmulator().create_bot()
    assert len(bot.token.split(".")) == 3
    assert bot.token not in repr(bot)


# -- Create Message --------------------------------------------------------------------------


async def test_create_message_stores_it_with_its_author_and_nonce(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    response = await create(discord, bot, channel.id, content="done", nonce="run-1")
    assert response.status_code == 200
    answer = response.json()
    assert answer["author"]["id"] == bot.id
    assert answer["channel_id"] == channel.id
    assert answer["nonce"] == "run-1"
    assert "webhook_id" not in answer
    [stored] = emulator.channel_messages(channel.id)
    assert (stored.id, stored.bot_id, stored.webhook_id) == (answer["id"], bot.id, None)
    assert (stored.nonce, stored.content, stored.channel_id) == ("run-1", "done", channel.id)
    assert stored.allowed_mentions == {"parse": []}


async def test_enforce_nonce_returns_the_earlier_message_within_five_minutes(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
    wall: FakeClock,
) -> None:
    # given a message created with a nonce
    first = await create(discord, bot, channel.id, content="a", nonce=42, enforce_nonce=True)
    wall.now += 299.0
    # when the same nonce comes again within the window
    again = await create(discord, bot, channel.id, content="a", nonce=42, enforce_nonce=True)
    # then Discord answers the first message and creates nothing
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(emulator.channel_messages(channel.id)) == 1
    assert emulator.counters.nonce_deduplicated == 1
    # and after the window the nonce creates a new message
    wall.now += 2.0
    late = await create(discord, bot, channel.id, content="a", nonce=42, enforce_nonce=True)
    assert late.json()["id"] != first.json()["id"]
    assert len(emulator.channel_messages(channel.id)) == 2
    assert emulator.counters.nonce_deduplicated == 1


async def test_a_nonce_without_enforce_or_by_another_bot_or_channel_creates_anew(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    other_bot = emulator.create_bot()
    other_channel = emulator.create_channel()
    await create(discord, bot, channel.id, content="a", nonce="n", enforce_nonce=True)
    await create(discord, bot, channel.id, content="a", nonce="n")
    await create(discord, other_bot, channel.id, content="a", nonce="n", enforce_nonce=True)
    await create(discord, bot, other_channel.id, content="a", nonce="n", enforce_nonce=True)
    assert len(emulator.channel_messages(channel.id)) == 3
    assert len(emulator.channel_messages(other_channel.id)) == 1
    assert emulator.counters.nonce_deduplicated == 0


@pytest.mark.parametrize(
    ("fields", "path", "code"),
    [
        ({"content": "x", "nonce": "n" * 26}, ("nonce",), "BASE_TYPE_MAX_LENGTH"),
        ({"content": "x", "enforce_nonce": "yes"}, ("enforce_nonce",), "BASE_TYPE_BOOLEAN"),
        ({"content": "x", "username": "relay"}, ("username",), "FIELD_NOT_ALLOWED"),
        ({"content": "x", "thread_name": "t"}, ("thread_name",), "FIELD_NOT_ALLOWED"),
        ({"content": "x" * 2001}, ("content",), "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"title": 5}]}, ("embeds", "0", "title"), "BASE_TYPE_STRING"),
    ],
)
async def test_a_bad_create_message_body_is_refused_with_50035(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
    fields: dict[str, object],
    path: tuple[str, ...],
    code: str,
) -> None:
    response = await create(discord, bot, channel.id, **fields)
    assert response.status_code == 400
    assert response.json()["code"] == 50035
    node = response.json()["errors"]
    for key in path:
        node = node[key]
    assert code in [e["code"] for e in node["_errors"]]
    assert emulator.channel_messages(channel.id) == []
    assert emulator.counters.payload_400s == 1


async def test_an_empty_create_message_is_refused_with_50006(
    discord: httpx.AsyncClient, bot: EmulatedBot, channel: EmulatedChannel
) -> None:
    response = await create(discord, bot, channel.id, nonce="x")
    assert (response.status_code, response.json()["code"]) == (400, 50006)


async def test_create_message_refusals_carry_discords_codes(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    # given a channel the bot cannot see and one it can see but not post in
    hidden = emulator.create_channel()
    emulator.set_access(hidden.id, bot.id, view=False)
    read_only = emulator.create_channel()
    emulator.set_access(read_only.id, bot.id, send=False)
    cases = [
        ("1300000000000000001", 404, 10003, "Unknown Channel"),
        (hidden.id, 403, 50001, "Missing Access"),
        (read_only.id, 403, 50013, "Missing Permissions"),
    ]
    for channel_id, status, code, message in cases:
        # when the bot posts there
        response = await create(discord, bot, channel_id, content="x")
        # then Discord refuses with its body and stores nothing
        assert response.status_code == status
        assert response.json() == {"message": message, "code": code}
        assert emulator.channel_messages(channel_id) == []
    assert emulator.counters.refusals == {"10003": 1, "50001": 1, "50013": 1}
    # and another bot is not affected by these settings
    other = emulator.create_bot()
    assert (await create(discord, other, hidden.id, content="x")).status_code == 200


async def test_a_webhook_channel_and_its_threads_take_bot_messages(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    webhook: EmulatedWebhook,
    emulator: DiscordEmulator,
) -> None:
    thread_id = emulator.create_thread(webhook.id)
    assert (await create(discord, bot, webhook.channel_id, content="a")).status_code == 200
    assert (await create(discord, bot, thread_id, content="b")).status_code == 200
    assert [m.content for m in emulator.channel_messages(webhook.channel_id)] == ["a"]
    assert [m.content for m in emulator.channel_messages(thread_id)] == ["b"]


# -- Get Channel Messages --------------------------------------------------------------------


async def test_get_channel_messages_shows_webhook_and_bot_messages_newest_first(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    webhook: EmulatedWebhook,
    emulator: DiscordEmulator,
) -> None:
    # given a webhook message and a bot message in one channel
    hooked = await discord.post(hook_path(webhook), json=body(content="from webhook"))
    await create(discord, bot, webhook.channel_id, content="from bot")
    # when the bot reads the channel
    response = await discord.get(channel_path(webhook.channel_id), headers=bot_auth(bot))
    # then both are there, newest first, each with its author
    assert response.status_code == 200
    page = response.json()
    assert [m["content"] for m in page] == ["from bot", "from webhook"]
    assert page[1]["id"] == hooked.json()["id"]
    assert page[1]["webhook_id"] == webhook.id
    assert [m.content for m in emulator.channel_messages(webhook.channel_id)] == [
        "from webhook",
        "from bot",
    ]


async def test_get_channel_messages_pages_with_after_before_and_limit(
    discord: httpx.AsyncClient, bot: EmulatedBot, channel: EmulatedChannel
) -> None:
    ids = [(await create(discord, bot, channel.id, content=str(i))).json()["id"] for i in range(5)]

    async def page(query: str) -> list[str]:
        response = await discord.get(channel_path(channel.id, f"?{query}"), headers=bot_auth(bot))
        assert response.status_code == 200
        return [m["id"] for m in response.json()]

    assert await page("limit=2") == [ids[4], ids[3]]
    assert await page(f"after={ids[1]}&limit=2") == [ids[3], ids[2]]
    assert await page(f"before={ids[3]}") == [ids[2], ids[1], ids[0]]
    assert await page(f"after={ids[4]}") == []


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "after=abc"])
async def test_get_channel_messages_refuses_bad_paging(
    discord: httpx.AsyncClient, bot: EmulatedBot, channel: EmulatedChannel, query: str
) -> None:
    response = await discord.get(channel_path(channel.id, f"?{query}"), headers=bot_auth(bot))
    assert (response.status_code, response.json()["code"]) == (400, 50035)


async def test_get_channel_messages_needs_view_and_read_history(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    await create(discord, bot, channel.id, content="x")
    emulator.set_access(channel.id, bot.id, read_history=False)
    response = await discord.get(channel_path(channel.id), headers=bot_auth(bot))
    assert (response.status_code, response.json()) == (200, [])
    emulator.set_access(channel.id, bot.id, view=False)
    response = await discord.get(channel_path(channel.id), headers=bot_auth(bot))
    assert (response.status_code, response.json()["code"]) == (403, 50001)


# -- Edit Message ----------------------------------------------------------------------------


async def test_edit_message_changes_the_bots_own_message_and_records_the_edit(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    message_id = (await create(discord, bot, channel.id, content="working")).json()["id"]
    response = await discord.patch(
        channel_path(channel.id, f"/{message_id}"),
        json=body(content="done"),
        headers=bot_auth(bot),
    )
    assert response.status_code == 200
    assert response.json()["content"] == "done"
    [edit] = emulator.edits(message_id)
    assert edit.payload["content"] == "done"
    assert emulator.channel_messages(channel.id)[0].content == "done"
    assert emulator.counters.edits == 1


async def test_edit_message_of_another_author_is_refused_with_50005(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    webhook: EmulatedWebhook,
    emulator: DiscordEmulator,
) -> None:
    # given a webhook message and another bot's message in the channel
    hooked = (await discord.post(hook_path(webhook), json=body(content="w"))).json()["id"]
    other = emulator.create_bot()
    theirs = (await create(discord, other, webhook.channel_id, content="o")).json()["id"]
    for message_id in (hooked, theirs):
        # when the bot edits it
        response = await discord.patch(
            channel_path(webhook.channel_id, f"/{message_id}"),
            json=body(content="mine now"),
            headers=bot_auth(bot),
        )
        # then Discord refuses and the message is unchanged
        assert response.status_code == 403
        assert response.json() == {
            "message": "Cannot edit a message authored by another user",
            "code": 50005,
        }
        assert emulator.edits(message_id) == []
    unknown = await discord.patch(
        channel_path(webhook.channel_id, "/1300000000000000009"),
        json=body(content="x"),
        headers=bot_auth(bot),
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, 10008)


# -- Create DM -------------------------------------------------------------------------------


async def dm(http: httpx.AsyncClient, bot: EmulatedBot, recipient: object) -> httpx.Response:
    return await http.post(
        "/api/v10/users/@me/channels", json={"recipient_id": recipient}, headers=bot_auth(bot)
    )


async def test_create_dm_returns_one_channel_per_bot_and_user(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator
) -> None:
    user = emulator.create_user()
    first = await dm(discord, bot, user.id)
    assert first.status_code == 200
    channel = first.json()
    assert channel["type"] == 1
    assert [r["id"] for r in channel["recipients"]] == [user.id]
    assert (await dm(discord, bot, user.id)).json()["id"] == channel["id"]
    other = emulator.create_bot()
    assert (await dm(discord, other, user.id)).json()["id"] != channel["id"]
    assert emulator.counters.dms_opened == 2
    # and a message there lands in the user's DMs
    assert (await create(discord, bot, channel["id"], content="hi")).status_code == 200
    assert [m.content for m in emulator.dm_messages(user.id)] == ["hi"]


async def test_a_dm_to_a_user_with_closed_dms_is_refused_with_50007(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator
) -> None:
    user = emulator.create_user(dms_open=False)
    channel_id = (await dm(discord, bot, user.id)).json()["id"]
    response = await create(discord, bot, channel_id, content="hi")
    assert response.status_code == 403
    assert response.json() == {"message": "Cannot send messages to this user", "code": 50007}
    assert emulator.dm_messages(user.id) == []
    emulator.set_dms_open(user.id, True)
    assert (await create(discord, bot, channel_id, content="hi")).status_code == 200


async def test_another_bot_cannot_post_in_a_dm_it_does_not_own(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator
) -> None:
    user = emulator.create_user()
    channel_id = (await dm(discord, bot, user.id)).json()["id"]
    response = await create(discord, emulator.create_bot(), channel_id, content="hi")
    assert (response.status_code, response.json()["code"]) == (403, 50001)


async def test_create_dm_with_an_unknown_or_malformed_user(
    discord: httpx.AsyncClient, bot: EmulatedBot
) -> None:
    unknown = await dm(discord, bot, "1300000000000000001")
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Unknown User", "code": 10013}
    for bad in ("abc", None, True):
        response = await dm(discord, bot, bad)
        assert (response.status_code, response.json()["code"]) == (400, 50035)


async def test_opening_too_many_dms_quickly_is_refused_with_40003(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator, mono: FakeClock
) -> None:
    # given a bot that opened its ten DMs in the window (the route bucket out of the way)
    emulator.set_limits(bot_route=(100, 1.0))
    users = [emulator.create_user() for _ in range(11)]
    for user in users[:10]:
        assert (await dm(discord, bot, user.id)).status_code == 200
    # when it opens an eleventh
    response = await dm(discord, bot, users[10].id)
    # then Discord refuses, but an existing DM still opens
    assert response.status_code == 400
    assert response.json() == {"message": "You are opening direct messages too fast", "code": 40003}
    assert (await dm(discord, bot, users[0].id)).status_code == 200
    assert emulator.counters.dms_opened == 10
    # and after the window it may open new ones again
    mono.now += 10.0
    assert (await dm(discord, bot, users[10].id)).status_code == 200


# -- answers in Discord's shape --------------------------------------------------------------


async def test_bot_answers_match_discords_response_schemas(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    channel: EmulatedChannel,
    emulator: DiscordEmulator,
) -> None:
    me = await discord.get("/api/v10/users/@me", headers=bot_auth(bot))
    assert list(spec_validator("UserPIIResponse").iter_errors(me.json())) == []
    message = await create(discord, bot, channel.id, content="x", nonce=7, enforce_nonce=True)
    assert list(spec_validator("MessageResponse").iter_errors(message.json())) == []
    user = emulator.create_user()
    opened = await dm(discord, bot, user.id)
    assert list(spec_validator("PrivateChannelResponse").iter_errors(opened.json())) == []


async def test_a_forum_channel_takes_no_bot_message(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator
) -> None:
    forum = emulator.create_webhook(forum=True)
    response = await create(discord, bot, forum.channel_id, content="x")
    assert response.status_code == 400
    assert response.json() == {
        "message": "Cannot send messages in a non-text channel",
        "code": 50008,
    }
    assert emulator.channel_messages(forum.channel_id) == []


async def test_a_thread_reads_as_its_own_channel_with_the_parents_access(
    discord: httpx.AsyncClient,
    bot: EmulatedBot,
    webhook: EmulatedWebhook,
    emulator: DiscordEmulator,
) -> None:
    # given a webhook message in a thread of the webhook's channel
    thread_id = emulator.create_thread(webhook.id)
    await discord.post(
        hook_path(webhook, query=f"wait=true&thread_id={thread_id}"), json=body(content="t")
    )
    # when the bot reads the thread, then the message is there, and not in the parent
    page = (await discord.get(channel_path(thread_id), headers=bot_auth(bot))).json()
    assert [(m["content"], m["channel_id"]) for m in page] == [("t", thread_id)]
    assert (await discord.get(channel_path(webhook.channel_id), headers=bot_auth(bot))).json() == []
    # and hiding the parent channel hides the thread
    emulator.set_access(webhook.channel_id, bot.id, view=False)
    hidden = await discord.get(channel_path(thread_id), headers=bot_auth(bot))
    assert hidden.json()["code"] == 50001


async def test_bot_routes_answer_on_every_api_version(
    discord: httpx.AsyncClient, bot: EmulatedBot, emulator: DiscordEmulator
) -> None:
    for prefix in ("/api/v9", "/api/v8", "/api"):
        assert (await discord.get(f"{prefix}/users/@me", headers=bot_auth(bot))).status_code == 200
    assert emulator.counters.unversioned_requests == 1
