"""Interaction follow-ups and the original response, with the 15-minute token lifetime."""

from __future__ import annotations

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedInteraction, snowflake_time
from tests.emulator.support import WALL_START, FakeClock, body, error_codes_at, followup_path


def test_interaction_token_and_expiry_follow_discords_shape(emulator: DiscordEmulator) -> None:
    interaction = emulator.create_interaction(age_seconds=120.0)
    assert interaction.token.startswith("aW50ZXJhY3Rpb24")
    assert len(interaction.token) >= 100
    assert snowflake_time(interaction.interaction_id) == pytest.approx(WALL_START - 120.0, abs=1e-3)
    assert interaction.expires_at == pytest.approx(WALL_START - 120.0 + 900.0, abs=1e-3)
    assert interaction.token not in repr(interaction)


async def test_follow_up_posts_and_always_answers_with_the_message(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    interaction = emulator.create_interaction()
    response = await discord.post(followup_path(interaction), json=body(content="done"))
    assert response.status_code == 200
    assert response.json()["content"] == "done"
    assert response.json()["application_id"] == interaction.application_id
    [stored] = emulator.followups(interaction.interaction_id)
    assert (stored.content, stored.interaction_id) == ("done", interaction.interaction_id)


async def test_ephemeral_flag_is_allowed_on_follow_ups(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    interaction = emulator.create_interaction()
    response = await discord.post(followup_path(interaction), json=body(content="x", flags=64))
    assert response.status_code == 200
    assert emulator.followups(interaction.interaction_id)[0].flags == 64


async def test_follow_up_after_15_minutes_is_refused_with_401_50027(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, wall: FakeClock
) -> None:
    # given an interaction created 14 minutes ago
    interaction = emulator.create_interaction(age_seconds=14 * 60)
    assert (
        await discord.post(followup_path(interaction), json=body(content="a"))
    ).status_code == 200
    # when the 15 minutes run out
    wall.now += 60
    response = await discord.post(followup_path(interaction), json=body(content="b"))
    # then the token is refused, and using it again is counted
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid Webhook Token", "code": 50027}
    await discord.post(followup_path(interaction), json=body(content="c"))
    assert emulator.counters.requests_after_401 == 1
    assert [m.content for m in emulator.followups(interaction.interaction_id)] == ["a"]


async def test_unknown_interaction_token_is_refused_with_404_10015(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    real = emulator.create_interaction()
    forged = EmulatedInteraction(
        real.application_id,
        real.interaction_id,
        "aW50ZXJhY3Rpb24" + "z" * 100,
        real.channel_id,
        real.expires_at,
        real.original_message_id,
    )
    response = await discord.post(followup_path(forged), json=body(content="x"))
    assert response.status_code == 404
    assert response.json() == {"message": "Unknown Webhook", "code": 10015}
    await discord.post(followup_path(forged), json=body(content="x"))
    assert emulator.counters.requests_after_404 == 1


async def test_follow_up_refuses_thread_id(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    interaction = emulator.create_interaction()
    response = await discord.post(
        followup_path(interaction) + "?thread_id=1300000000000000000", json=body(content="x")
    )
    assert response.status_code == 400
    assert response.json()["code"] == 50035
    assert "thread_id" in response.json()["errors"]
    assert emulator.counters.payload_400s == 1


@pytest.mark.parametrize(
    ("field", "value"), [("username", "Relay"), ("avatar_url", "https://example.com/a.png")]
)
async def test_follow_up_refuses_username_and_avatar_url(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, field: str, value: str
) -> None:
    interaction = emulator.create_interaction()
    response = await discord.post(
        followup_path(interaction), json=body(content="x", **{field: value})
    )
    assert response.status_code == 400
    assert error_codes_at(response, field) == ["FIELD_NOT_ALLOWED"]
    assert emulator.followups(interaction.interaction_id) == []


async def test_edit_original_fills_in_the_deferred_response(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    # given a deferred interaction ("thinking...")
    interaction = emulator.create_interaction()
    assert emulator.original(interaction.interaction_id).flags == 128
    # when the bot edits @original
    response = await discord.patch(
        followup_path(interaction, "/messages/@original"), json=body(content="answer")
    )
    # then the original carries the answer and the edit is recorded
    assert response.status_code == 200
    assert response.json()["id"] == interaction.original_message_id
    original = emulator.original(interaction.interaction_id)
    assert original.content == "answer"
    assert original.flags == 0
    assert original.edits == [body(content="answer")]
    got = await discord.get(followup_path(interaction, "/messages/@original"))
    assert got.json()["content"] == "answer"


async def test_edit_original_after_expiry_is_refused_with_401(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, wall: FakeClock
) -> None:
    interaction = emulator.create_interaction()
    wall.now += 15 * 60
    response = await discord.patch(
        followup_path(interaction, "/messages/@original"), json=body(content="late")
    )
    assert response.status_code == 401
    assert emulator.original(interaction.interaction_id).content == ""


async def test_follow_up_can_be_edited_by_its_id(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    interaction = emulator.create_interaction()
    posted = (await discord.post(followup_path(interaction), json=body(content="v1"))).json()
    response = await discord.patch(
        followup_path(interaction, f"/messages/{posted['id']}"), json=body(content="v2")
    )
    assert response.status_code == 200
    assert emulator.followups(interaction.interaction_id)[0].content == "v2"


async def test_get_webhook_with_an_interaction_token_is_not_allowed(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    interaction = emulator.create_interaction()
    response = await discord.get(followup_path(interaction))
    assert response.status_code == 405
