"""Interaction tokens: the 15-minute arithmetic, the warning helper, and ``hand_off``."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from bot_client import InteractionRef, RelayClient, Requester, token_warning
from service.delivery.worker import Worker
from service.discord.snowflake import snowflake_at
from service.testing import DiscordEmulator, EmulatedInteraction, EmulatedWebhook
from tests.conftest import Clock
from tests.support import ACME_KEY, USER_ID

CREATED = 1_790_000_000.0  # the test clock's start
GUILD_ID = "556677889900112233"


def fake_interaction(
    interaction_id: str,
    *,
    application_id: str = "445566778899001122",
    token: str = "tok-" + "z" * 60,
    user_id: str = USER_ID,
    guild_id: str | None = GUILD_ID,
    channel_id: str | None = "667788990011223344",
) -> SimpleNamespace:
    """What discord.py's Interaction offers, with its int ids."""
    return SimpleNamespace(
        id=int(interaction_id),
        application_id=int(application_id),
        token=token,
        user=SimpleNamespace(id=int(user_id)),
        guild_id=int(guild_id) if guild_id else None,
        channel_id=int(channel_id) if channel_id else None,
    )


def from_emulator(interaction: EmulatedInteraction) -> SimpleNamespace:
    return fake_interaction(
        interaction.interaction_id,
        application_id=interaction.application_id,
        token=interaction.token,
        channel_id=interaction.channel_id,
    )


def test_expiry_comes_from_the_interaction_id() -> None:
    ref = InteractionRef.from_interaction(fake_interaction(snowflake_at(CREATED)))
    assert ref.created_at == datetime.fromtimestamp(CREATED, UTC)
    assert ref.expires_at == datetime.fromtimestamp(CREATED + 900, UTC)
    assert ref.interaction_id == snowflake_at(CREATED)  # ints become the API's strings
    assert "tok-" not in repr(ref)


@pytest.mark.parametrize(
    ("age", "margin", "left", "usable"),
    [
        (0, 60, 900, True),
        (839, 60, 61, True),
        (840, 60, 60, False),
        (840, 0, 60, True),
        (1000, 60, -100, False),
    ],
)
def test_seconds_left_and_usability(age: float, margin: float, left: float, usable: bool) -> None:
    ref = InteractionRef.from_interaction(fake_interaction(snowflake_at(CREATED)))
    assert ref.seconds_left(now=CREATED + age) == pytest.approx(left)
    assert ref.is_usable(margin, now=CREATED + age) is usable


@pytest.mark.parametrize(
    ("age", "usable", "warn"),
    [
        (0, True, False),
        (11 * 60, True, False),
        (12 * 60 + 1, True, True),  # from 12 minutes: 3 minutes of token life remain
        (14 * 60 - 1, True, True),
        (14 * 60, False, False),  # too late to say anything through the interaction
        (20 * 60, False, False),
    ],
)
def test_token_warning_tells_when_to_warn_the_user(age: float, usable: bool, warn: bool) -> None:
    interaction = fake_interaction(snowflake_at(CREATED))
    status = token_warning(interaction, workflow_id="wf_9", now=CREATED + age)
    assert (status.usable, status.warn) == (usable, warn)
    assert "/retrieve_results workflow_id:wf_9" in status.notice
    assert status.seconds_left == pytest.approx(900 - age)


def test_requester_comes_from_the_interaction() -> None:
    interaction = fake_interaction(snowflake_at(CREATED), guild_id=None)
    requester = Requester.from_interaction(interaction)
    assert requester == Requester(user_id=USER_ID, channel_id="667788990011223344")


async def test_hand_off_within_the_token_life_answers_with_a_follow_up(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, worker: Worker
) -> None:
    # given a command deferred ten minutes ago
    interaction = emulator.create_interaction(age_seconds=600)
    # when it hands off its results
    outcome = await relay.hand_off(
        from_emulator(interaction),
        workflow_id="wf_h",
        results={"summary": "fine"},
        destination=hook.url,
        url="https://youtube.com/watch?v=abc",
        depth="standard",
    )
    assert outcome.status == "accepted" and outcome.record is not None
    assert outcome.record.requester is not None
    assert outcome.record.requester.user_id == USER_ID
    await worker.drain()
    # then the user gets the follow-up, and the channel nothing
    assert len(emulator.followups(interaction.interaction_id)) == 1
    assert emulator.messages(hook.id) == []
    record = await relay.get_result("wf_h")
    assert record.messages[0].route == "interaction"


async def test_hand_off_after_fifteen_minutes_goes_to_the_channel(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, worker: Worker
) -> None:
    interaction = emulator.create_interaction(age_seconds=20 * 60)
    await relay.hand_off(
        from_emulator(interaction), workflow_id="wf_late", results={"a": 1}, destination=hook.url
    )
    await worker.drain()
    assert emulator.followups(interaction.interaction_id) == []
    [message] = emulator.messages(hook.id)
    assert message.content is not None and message.content.startswith(f"<@{USER_ID}>")


async def test_hand_off_again_later_is_still_the_same_submission(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, clock: Clock
) -> None:
    # a retry after the token expired must not turn into a 409: the body does not depend on time
    interaction = from_emulator(emulator.create_interaction(age_seconds=800))
    first = await relay.hand_off(interaction, workflow_id="wf_r", results={}, destination=hook.url)
    clock.advance(600)
    again = await relay.hand_off(interaction, workflow_id="wf_r", results={}, destination=hook.url)
    assert (first.status, again.status) == ("accepted", "duplicate")


async def test_hand_off_uses_the_default_destination(
    app: FastAPI, emulator: DiscordEmulator, hook: EmulatedWebhook
) -> None:
    async with RelayClient(
        "http://relay",
        api_key=ACME_KEY,
        transport=httpx.ASGITransport(app=app),
        default_destination=hook.url,
    ) as relay:
        interaction = from_emulator(emulator.create_interaction(age_seconds=20 * 60))
        outcome = await relay.hand_off(interaction, workflow_id="wf_d", results={})
    assert outcome.record is not None and outcome.record.destination is not None
    assert outcome.record.destination.webhook_id == hook.id
