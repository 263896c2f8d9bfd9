"""The example bot's ``/autointel`` wiring, run with a stand-in interaction and the real app."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot_client import Destination, RelayClient, RunHandle
from bot_client.examples import autointel_bot
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook
from tests.bot_client.fake_relay import FakeRelay
from tests.bot_client.test_discord_ext import Recorder
from tests.support import APPLICATION_ID, INTERACTION_ID, INTERACTION_TOKEN, USER_ID


def test_the_example_stays_small() -> None:
    assert len(inspect.getsource(autointel_bot).splitlines()) < 100


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, ["DISCORD_TOKEN", "RELAY_URL", "RELAY_API_KEY", "RELAY_WEBHOOK_URL"]),
        ({"DISCORD_TOKEN": "t", "RELAY_API_KEY": "k"}, ["RELAY_URL", "RELAY_WEBHOOK_URL"]),
        (
            {"DISCORD_TOKEN": "t", "RELAY_URL": "  ", "RELAY_API_KEY": ""},
            ["RELAY_URL", "RELAY_API_KEY", "RELAY_WEBHOOK_URL"],
        ),
        ({name: "x" for name in autointel_bot.SETTINGS}, []),
    ],
)
def test_missing_settings_names_every_unset_or_blank_one_in_order(
    environ: dict[str, str], missing: list[str]
) -> None:
    assert autointel_bot.missing_settings(environ) == missing


def test_the_example_started_without_settings_names_them_all_and_exits_2(tmp_path: Path) -> None:
    # given no environment at all
    # when the example bot is started as its docstring says
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot_client.examples.autointel_bot"],
        env={},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # then it exits 2 with one line naming every missing setting
    assert ran.returncode == 2
    imports = [line for line in ran.stderr.splitlines() if line.startswith("import time:")]
    said = [line for line in ran.stderr.splitlines() if not line.startswith("import time:")]
    everything = "DISCORD_TOKEN, RELAY_URL, RELAY_API_KEY, RELAY_WEBHOOK_URL"
    assert said == [f"autointel_bot: missing settings: {everything}"]
    assert ran.stdout == ""
    # and it stopped before loading discord.py
    imported = {line.rsplit("|", 1)[-1].strip() for line in imports}
    assert "bot_client" in imported
    assert not {name for name in imported if name.split(".")[0] in {"discord", "aiohttp"}}


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
    # (a relay with runs may also keep a progress message in the channel: not the result)
    mentions = [
        m for m in emulator.messages(hook.id) if (m.content or "").startswith(f"<@{USER_ID}>")
    ]
    assert len(mentions) == 1
    assert interaction.followup.send.calls == []  # nothing to say through a dead token


def command_interaction(interaction_id: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=interaction_id,
        application_id=int(APPLICATION_ID),
        token=INTERACTION_TOKEN,
        user=SimpleNamespace(id=int(USER_ID)),
        guild_id=None,
        channel_id=42,
        response=SimpleNamespace(defer=Recorder()),
        followup=SimpleNamespace(send=Recorder()),
    )


async def test_autointel_reports_each_step_of_its_run(fake: FakeRelay) -> None:
    # given the example's command and a relay that knows runs
    interaction = command_interaction(int(INTERACTION_ID))
    async with fake.client() as relay:
        cog = autointel_bot.AutoIntel(relay, seconds=0.0, steps=3)
        # when the command runs
        await cog.autointel.callback(cog, interaction, "https://youtube.com/watch?v=abc")  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
    # then it started a run, showed its steps in order (the background sender may drop one
    # an update or the finish overtook), and finished it
    [start] = fake.sent("POST", "runs")
    assert start["title"] == "Video analysis" and start["workflow_id"] == f"wf_{INTERACTION_ID}"
    progress = fake.sent("PUT", "progress")
    assert progress[0] == {"stage": "analysing", "current": 1, "total": 3}
    assert [p["current"] for p in progress] == sorted({p["current"] for p in progress})
    [result] = fake.sent("POST", "results")
    assert "error" not in result and result["results"]["deception_score"] == 0.12
    assert interaction.followup.send.calls == []


async def test_autointel_reports_a_failed_analysis(
    fake: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an analysis that fails half-way
    async def broken(self: Any, run: RunHandle, url: str) -> dict[str, Any]:
        await run.progress("analysing", 1, 2)
        raise TimeoutError("the video host did not answer")

    monkeypatch.setattr(autointel_bot.AutoIntel, "analyse", broken)
    async with fake.client() as relay:
        cog = autointel_bot.AutoIntel(relay, seconds=0.0)
        # when the command runs, it fails as it would without the relay
        with pytest.raises(TimeoutError):
            await cog.autointel.callback(cog, command_interaction(int(INTERACTION_ID)), "u")  # type: ignore[arg-type]
    # and the relay was told where and why
    [result] = fake.sent("POST", "results")
    assert result["error"] == {
        "stage": "analysing",
        "message": "TimeoutError: the video host did not answer",
    }
