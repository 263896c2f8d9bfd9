"""The package's public surface: a deliberate `__all__`, and values shaped like Discord's."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

import service.testing
from service.testing import DiscordEmulator, snowflake_time
from tests.emulator.support import WALL_START, FakeClock, body, followup_path, hook_path

EXPECTED = {
    "AppServer",
    "FAULT_KINDS",
    "ChannelAccess",
    "ConnectionDropped",
    "DiscordEmulator",
    "EmulatedBot",
    "EmulatedChannel",
    "EmulatedInteraction",
    "EmulatedUser",
    "EmulatedWebhook",
    "EmulatorCounters",
    "EmulatorServer",
    "Fault",
    "FaultKind",
    "ReceivedAttachment",
    "ReceivedEdit",
    "ReceivedMessage",
    "free_port",
    "snowflake_time",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(service.testing.__all__) == EXPECTED
    public = {n for n in vars(service.testing) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(service.testing, n)).__name__ == "module"}
    assert public - modules == EXPECTED


def test_webhook_has_a_realistic_snowflake_token_and_url(emulator: DiscordEmulator) -> None:
    webhook = emulator.create_webhook()
    assert re.fullmatch(r"[0-9]{17,20}", webhook.id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{68}", webhook.token)
    assert snowflake_time(webhook.id) == WALL_START
    assert webhook.url == f"https://discord.com/api/webhooks/{webhook.id}/{webhook.token}"
    assert webhook.token not in repr(webhook)


def test_ids_stay_unique_while_the_wall_clock_stands_still(emulator: DiscordEmulator) -> None:
    ids = [emulator.create_webhook().id for _ in range(5000)]
    assert len(set(ids)) == len(ids)


def test_forum_webhooks_share_a_forum_channel(emulator: DiscordEmulator) -> None:
    forum = emulator.create_webhook(forum=True, channel_id="1200000000000000009")
    assert forum.forum and forum.channel_id == "1200000000000000009"
    try:
        emulator.create_webhook(channel_id="1200000000000000009")
    except ValueError:
        pass
    else:
        raise AssertionError("a forum channel cannot also be a text channel")


def test_counters_snapshot_does_not_change_afterwards(mono: FakeClock) -> None:
    emulator = DiscordEmulator(clock=mono)
    before = emulator.counters
    assert before.as_dict()["rate_limited"] == {
        "user": 0,
        "shared": 0,
        "global": 0,
        "cloudflare": 0,
    }
    assert before.total_requests == 0


async def test_tokens_never_reach_the_logs(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    webhook = emulator.create_webhook()
    interaction = emulator.create_interaction()
    with caplog.at_level(logging.DEBUG, logger="service.testing"):
        await discord.post(hook_path(webhook), json=body(content="x"))
        await discord.post(followup_path(interaction), json=body(content="x"))
        await discord.post(hook_path(webhook), json=body(content="x" * 2001))
    assert caplog.records, "the emulator logs its traffic at debug level"
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert webhook.token not in text
        assert interaction.token not in text
