"""The example bot's ``/autointel`` wiring, run with a stand-in interaction and the real app."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from bot_client import Destination, RelayClient
from bot_client.examples import autointel_bot
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook
from tests.bot_client.test_discord_ext import Recorder
from tests.support import USER_ID


def test_the_example_stays_small() -> None:
    assert len(inspect.getsource(autointel_bot).splitlines()) < 100


async def test_autointel_hands_its_results_to_the_relay(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, worker: Worker
) -> None:
    # given the example's command, a channel webhook as the bot's default destination,
    # and a deferred interaction whose token ran out while the analysis ran
    relay.default_destination = Destination(webhook_url=hook.url)
    created = emulator.create_interaction(age_seconds=20 * 60)
    interaction = SimpleNamespace(
        id=int(created.interaction_id),
        application_id=int(created.application_id),
        token=created.token,
        user=SimpleNamespace(id=int(USER_ID)),
        guild_id=None,
        channel_id=int(created.channel_id),
        response=SimpleNamespace(defer=Recorder()),
        followup=SimpleNamespace(send=Recorder()),
    )
    cog = autointel_bot.AutoIntel(relay, seconds=0.0, steps=1)
    # when the command runs
    await cog.autointel.callback(cog, interaction, "https://youtube.com/watch?v=abc")  # type: ignore[arg-type]
    # then the result is with the relay, and reaches the channel, mentioning the user
    record = await relay.get_result(f"wf_{created.interaction_id}")
    assert record.url == "https://youtube.com/watch?v=abc"
    await worker.drain()
    [message] = emulator.messages(hook.id)
    assert message.content is not None and message.content.startswith(f"<@{USER_ID}>")
    assert interaction.followup.send.calls == []  # nothing to say through a dead token
