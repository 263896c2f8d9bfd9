"""The edits a run makes: `@original` while the token lives, webhook messages, each edit recorded
and counted, the shared rate limit, and 30046 for messages older than an hour."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedInteraction, EmulatedWebhook
from tests.emulator.support import (
    WALL_START,
    FakeClock,
    body,
    error_codes_at,
    followup_path,
    hook_path,
    message_path,
)

HOUR = 3600.0
EDITS_PER_HOUR_WHEN_OLD = 5
ERROR_30046 = {
    "message": "Maximum number of edits to messages older than 1 hour reached. Try again later",
    "code": 30046,
}


def original_path(interaction: EmulatedInteraction) -> str:
    return followup_path(interaction, "/messages/@original")


async def post(http: httpx.AsyncClient, webhook: EmulatedWebhook) -> str:
    response = await http.post(hook_path(webhook), json=body(content="v0"))
    assert response.status_code == 200
    message_id: str = response.json()["id"]
    return message_id


async def edit(
    http: httpx.AsyncClient, webhook: EmulatedWebhook, message_id: str, payload: dict[str, Any]
) -> httpx.Response:
    return await http.patch(message_path(webhook, message_id), json=payload)


# -- @original ----------------------------------------------------------------------------------


async def test_deferred_response_exists_from_creation_as_an_empty_thinking_message(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    # given a freshly deferred interaction
    interaction = emulator.create_interaction()
    # when the bot reads @original before editing it
    response = await discord.get(original_path(interaction))
    # then Discord holds the empty loading message, and so does the helper
    assert response.status_code == 200
    assert response.json()["id"] == interaction.original_message_id
    assert response.json()["flags"] == 128
    held = emulator.original(interaction.interaction_id)
    assert (held.id, held.content, held.flags) == (interaction.original_message_id, "", 128)
    assert emulator.edits(interaction.original_message_id) == []


@pytest.mark.parametrize(
    ("seconds_after_creation", "status"),
    [(0.0, 200), (14 * 60 + 59.0, 200), (15 * 60.0, 401), (16 * 60.0, 401)],
)
async def test_original_is_editable_only_while_the_token_lives(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    wall: FakeClock,
    seconds_after_creation: float,
    status: int,
) -> None:
    # given an interaction, and the wall clock moved on
    interaction = emulator.create_interaction()
    wall.now += seconds_after_creation
    # when the bot edits @original
    response = await discord.patch(original_path(interaction), json=body(content="progress"))
    # then the edit lands within 15 minutes and is refused with 50027 after
    assert response.status_code == status
    applied = emulator.original(interaction.interaction_id).content == "progress"
    assert applied is (status == 200)
    if status == 401:
        assert response.json() == {"message": "Invalid Webhook Token", "code": 50027}
        assert emulator.edits(interaction.original_message_id) == []
        assert (await discord.get(original_path(interaction))).status_code == 401


async def test_original_edits_are_recorded_with_their_body_and_time(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, wall: FakeClock, mono: FakeClock
) -> None:
    # given a deferred interaction
    interaction = emulator.create_interaction()
    # when the bot edits @original three times, seconds apart
    payloads = [body(content=f"stage {i}") for i in range(3)]
    for payload in payloads:
        assert (await discord.patch(original_path(interaction), json=payload)).status_code == 200
        wall.now += 3
        mono.now += 3
    # then each edit is recorded in order, counted, and the last one shows
    edits = emulator.edits(interaction.original_message_id)
    assert [e.payload for e in edits] == payloads
    assert [e.received_at for e in edits] == [WALL_START, WALL_START + 3, WALL_START + 6]
    assert {e.message_id for e in edits} == {interaction.original_message_id}
    assert emulator.counters.edits == 3
    assert emulator.original(interaction.interaction_id).content == "stage 2"


async def test_original_edit_is_validated_against_the_schema_and_loses_nothing(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    # given an @original that already shows a stage
    interaction = emulator.create_interaction()
    await discord.patch(original_path(interaction), json=body(content="stage 1"))
    # when an edit carries an embed title over 256 characters
    bad = body(embeds=[{"title": "t" * 257}])
    response = await discord.patch(original_path(interaction), json=bad)
    # then it is a 50035 at the field, and the message and its edits are unchanged
    assert response.status_code == 400
    assert error_codes_at(response, "embeds", 0, "title") == ["BASE_TYPE_MAX_LENGTH"]
    assert emulator.original(interaction.interaction_id).content == "stage 1"
    assert len(emulator.edits(interaction.original_message_id)) == 1
    assert emulator.counters.edits == 1
    assert emulator.counters.payload_400s == 1


@pytest.mark.parametrize(
    "mentions",
    [None, {"parse": ["users"]}, {"parse": ["everyone"]}, {"users": []}],
    ids=["missing", "users", "everyone", "no-parse"],
)
async def test_edits_without_parse_empty_allowed_mentions_are_counted(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    mentions: dict[str, Any] | None,
) -> None:
    # given a webhook message and an interaction's @original
    message_id = await post(discord, webhook)
    interaction = emulator.create_interaction()
    payload: dict[str, Any] = {"content": "edited"}
    if mentions is not None:
        payload["allowed_mentions"] = mentions
    # when both are edited without `allowed_mentions: {"parse": []}`
    assert (await edit(discord, webhook, message_id, payload)).status_code == 200
    assert (await discord.patch(original_path(interaction), json=payload)).status_code == 200
    # then both edits apply and both are counted as unsafe
    assert emulator.counters.bad_allowed_mentions == 2
    assert emulator.counters.edits == 2


# -- webhook messages ---------------------------------------------------------------------------


async def test_webhook_message_edits_are_recorded_per_message(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, wall: FakeClock
) -> None:
    # given two messages of one webhook
    first, second = await post(discord, webhook), await post(discord, webhook)
    # when the second is edited twice, a minute apart
    await edit(discord, webhook, second, body(content="v1"))
    wall.now += 60
    await edit(discord, webhook, second, body(content="v2"))
    # then only the second has edits, with their bodies and times
    assert emulator.edits(first) == []
    edits = emulator.edits(second)
    assert [(e.payload, e.received_at) for e in edits] == [
        (body(content="v1"), WALL_START),
        (body(content="v2"), WALL_START + 60),
    ]
    assert emulator.messages(webhook.id)[1].content == "v2"
    assert emulator.counters.edits == 2


def test_edits_of_an_unknown_message_is_a_key_error(emulator: DiscordEmulator) -> None:
    with pytest.raises(KeyError):
        emulator.edits("1")


# -- rate limits --------------------------------------------------------------------------------


async def test_posts_and_edits_share_the_webhooks_five_per_two_seconds(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given two posts
    message_id = await post(discord, webhook)
    await post(discord, webhook)
    # when three edits follow inside the same two seconds
    answers = [await edit(discord, webhook, message_id, body(content=f"e{i}")) for i in range(3)]
    # then they count down the same bucket, with the same headers as posts
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "5"
    assert answers[0].headers["X-RateLimit-Reset-After"] == "2.000"
    # and a sixth request, edit or post, is a user 429 and counted premature
    refused = await edit(discord, webhook, message_id, body(content="e3"))
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Scope"] == "user"
    assert (await discord.post(hook_path(webhook), json=body(content="p"))).status_code == 429
    assert emulator.counters.premature_requests == 2
    assert emulator.counters.rate_limited["user"] == 2
    assert [e.payload["content"] for e in emulator.edits(message_id)] == ["e0", "e1", "e2"]


async def test_waiting_the_announced_reset_lets_edits_through(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    # given a bucket that edits used up
    message_id = await post(discord, webhook)
    for i in range(4):
        last = await edit(discord, webhook, message_id, body(content=f"e{i}"))
    assert last.headers["X-RateLimit-Remaining"] == "0"
    # when the client waits what Discord announced
    mono.now += float(last.headers["X-RateLimit-Reset-After"])
    response = await edit(discord, webhook, message_id, body(content="after"))
    # then the edit lands and nothing was premature
    assert response.status_code == 200
    assert emulator.counters.premature_requests == 0


async def test_interaction_edits_and_follow_ups_share_five_per_two_seconds_per_interaction(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a global limit of one request a second, used up by a channel webhook
    emulator.set_limits(global_=(1, 1.0))
    await post(discord, webhook)
    interaction, other = emulator.create_interaction(), emulator.create_interaction()
    # when an interaction gets two follow-ups and three @original edits at once
    for i in range(2):
        assert (
            await discord.post(followup_path(interaction), json=body(content=f"f{i}"))
        ).is_success
    edits = [
        await discord.patch(original_path(interaction), json=body(content=f"o{i}"))
        for i in range(3)
    ]
    # then all five pass the global limit, and the bucket is empty after them
    assert [e.status_code for e in edits] == [200, 200, 200]
    assert edits[-1].headers["X-RateLimit-Remaining"] == "0"
    sixth = await discord.patch(original_path(interaction), json=body(content="o3"))
    assert sixth.status_code == 429
    assert sixth.json()["global"] is False
    # and another interaction has a bucket of its own
    assert (await discord.patch(original_path(other), json=body(content="x"))).status_code == 200
    assert emulator.counters.rate_limited == {"user": 1, "shared": 0, "global": 0, "cloudflare": 0}
    assert emulator.original(interaction.interaction_id).content == "o2"


# -- 30046 --------------------------------------------------------------------------------------


async def test_message_younger_than_an_hour_takes_any_number_of_edits(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    # given a message 59 minutes into its life (wall clock) and a roomy bucket
    emulator.set_limits(webhook=(100, 2.0))
    message_id = await post(discord, webhook)
    # when it is edited twenty times
    answers = [await edit(discord, webhook, message_id, body(content=f"e{i}")) for i in range(20)]
    # then every edit lands
    assert {a.status_code for a in answers} == {200}
    assert len(emulator.edits(message_id)) == 20


async def test_message_older_than_an_hour_takes_five_edits_an_hour_then_30046(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    wall: FakeClock,
    mono: FakeClock,
) -> None:
    # given a message edited often in its first hour, now an hour old
    emulator.set_limits(webhook=(100, 2.0))
    message_id = await post(discord, webhook)
    for i in range(10):
        await edit(discord, webhook, message_id, body(content=f"young {i}"))
    wall.now += HOUR
    # when it is edited six times in the next hour
    answers = []
    for i in range(EDITS_PER_HOUR_WHEN_OLD + 1):
        answers.append(await edit(discord, webhook, message_id, body(content=f"old {i}")))
        wall.now += 60
    # then five land and the sixth is refused with 30046, leaving the message as it was
    assert [a.status_code for a in answers] == [200] * EDITS_PER_HOUR_WHEN_OLD + [400]
    assert answers[-1].json() == ERROR_30046
    assert emulator.messages(webhook.id)[0].content == "old 4"
    assert len(emulator.edits(message_id)) == 10 + EDITS_PER_HOUR_WHEN_OLD
    assert emulator.counters.other_400s == 1
    assert emulator.counters.payload_400s == 0
    # and an hour after the first of those edits, one more is allowed again
    wall.now = WALL_START + 2 * HOUR + 1
    assert (await edit(discord, webhook, message_id, body(content="later"))).status_code == 200


async def test_30046_fault_refuses_the_next_edit_and_leaves_posts_alone(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a young message and a forced 30046 for its webhook
    message_id = await post(discord, webhook)
    emulator.inject_fault("30046", webhook_id=webhook.id)
    # when the webhook posts, then edits twice
    assert (await discord.post(hook_path(webhook), json=body(content="p"))).status_code == 200
    first = await edit(discord, webhook, message_id, body(content="e1"))
    second = await edit(discord, webhook, message_id, body(content="e2"))
    # then the post passes, the first edit meets the fault, the second lands
    assert (first.status_code, first.json()) == (400, ERROR_30046)
    assert second.status_code == 200
    assert [e.payload["content"] for e in emulator.edits(message_id)] == ["e2"]
    assert emulator.pending_faults() == []


async def test_30046_fault_waits_for_an_edit_that_would_have_applied(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a forced 30046
    message_id = await post(discord, webhook)
    emulator.inject_fault("30046", webhook_id=webhook.id)
    # when an edit fails for its own reason (a body over the limits, an unknown message)
    bad = await edit(discord, webhook, message_id, body(content="x" * 2001))
    unknown = await edit(discord, webhook, "1", body(content="x"))
    # then the fault is still pending, and meets the next valid edit
    assert (bad.status_code, unknown.status_code) == (400, 404)
    assert [f.kind for f in emulator.pending_faults()] == ["30046"]
    assert (await edit(discord, webhook, message_id, body(content="ok"))).json() == ERROR_30046


async def test_30046_fault_reaches_original_through_the_application_id(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    # given an interaction and a forced 30046 for its application, twice
    interaction = emulator.create_interaction()
    emulator.inject_fault("30046", webhook_id=interaction.application_id, count=2)
    # when @original is edited three times
    statuses = [
        (await discord.patch(original_path(interaction), json=body(content=f"o{i}"))).status_code
        for i in range(3)
    ]
    # then two are refused and the third lands
    assert statuses == [400, 400, 200]
    assert [e.payload["content"] for e in emulator.edits(interaction.original_message_id)] == ["o2"]


# -- control API --------------------------------------------------------------------------------


async def test_edits_and_the_30046_fault_over_the_control_api(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a message edited once, and a 30046 injected over HTTP
    message_id = await post(discord, webhook)
    await edit(discord, webhook, message_id, body(content="v1"))
    injected = await discord.post(
        "/_emulator/faults", json={"kind": "30046", "webhook_id": webhook.id}
    )
    assert injected.status_code == 201
    # when the message is edited again
    refused = await edit(discord, webhook, message_id, body(content="v2"))
    # then the fault answers, and the control API lists the one edit that landed
    assert refused.json() == ERROR_30046
    listed = (await discord.get(f"/_emulator/messages/{message_id}/edits")).json()
    assert listed == {
        "edits": [
            {"message_id": message_id, "payload": body(content="v1"), "received_at": WALL_START}
        ]
    }
    assert (await discord.get("/_emulator/counters")).json()["edits"] == 1
    assert (await discord.get("/_emulator/messages/1/edits")).status_code == 404
