"""A small discord.py bot wired to result-relay: ``/autointel url:`` defers, runs a stand-in for
a long analysis inside ``relay.run(...)``, reporting progress, and hands the results to the
relay, which shows the progress and delivers them even after the interaction's 15 minutes are
over. ``/retrieve_results`` comes from ``RelayCog``: ``workflow_id:`` (autocompleted from the
user's own) shows one; ``url:`` (a piece of the video's URL), ``since:``, ``until:`` list them.

    DISCORD_TOKEN=... RELAY_URL=http://127.0.0.1:8080 RELAY_API_KEY=... \\
    RELAY_WEBHOOK_URL=https://discord.com/api/webhooks/<id>/<token> \\
    python -m bot_client.examples.autointel_bot
"""

# ruff: noqa: E402  (the settings are checked before discord.py is imported, see below)
from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

SETTINGS = ("DISCORD_TOKEN", "RELAY_URL", "RELAY_API_KEY", "RELAY_WEBHOOK_URL")


def missing_settings(environ: Mapping[str, str]) -> list[str]:
    return [name for name in SETTINGS if not environ.get(name, "").strip()]


# A misconfigured start names every gap at once, before discord.py loads or anything connects.
if __name__ == "__main__" and (missing := missing_settings(os.environ)):
    print(f"autointel_bot: missing settings: {', '.join(missing)}", file=sys.stderr)
    raise SystemExit(2)

import discord
from discord import app_commands
from discord.ext import commands

from bot_client import RelayClient, RunHandle, token_warning
from bot_client.discord_ext import RelayCog


class AutoIntel(commands.Cog):
    def __init__(self, relay: RelayClient, *, seconds: float = 20.0, steps: int = 10) -> None:
        self.relay, self.seconds, self.steps = relay, seconds, steps

    @app_commands.command(name="autointel", description="Analyse a video (takes a while)")
    async def autointel(self, interaction: discord.Interaction, url: str) -> None:
        await interaction.response.defer(thinking=True)
        workflow_id = f"wf_{interaction.id}"  # stable: a retried hand-off is the same submission
        # The relay shows the progress, moves it to the channel before the token runs out, and
        # posts the result, or the failure if analyse() raises. The command only reports.
        async with self.relay.run(
            interaction, workflow_id=workflow_id, title="Video analysis", url=url, depth="standard"
        ) as run:
            outcome = await run.finish(await self.analyse(run, url))
        # Only a spooled result is worth a word (the relay was down).
        if outcome.spooled and token_warning(interaction).usable:
            await interaction.followup.send(
                "The results are saved and will be posted as soon as the relay is back.",
                ephemeral=True,
            )

    async def analyse(self, run: RunHandle, url: str) -> dict[str, Any]:
        """Stand-in for the real workflow: a step every few seconds, each one shown."""
        for step in range(1, self.steps + 1):
            await asyncio.sleep(self.seconds / self.steps)
            await run.progress("analysing", step, self.steps)  # never waits, never raises
        return {"summary": f"No manipulation found in {url}.", "deception_score": 0.12}


class AutoIntelBot(commands.Bot):
    def __init__(self, relay: RelayClient, seconds: float) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
        self.relay, self.seconds = relay, seconds

    async def setup_hook(self) -> None:
        await self.add_cog(AutoIntel(self.relay, seconds=self.seconds))
        await self.add_cog(RelayCog(self, self.relay))
        self.relay.start_spool_flusher(interval=30)  # sends what was spooled while it was down
        await self.tree.sync()


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    async with RelayClient(
        os.environ["RELAY_URL"],
        api_key=os.environ["RELAY_API_KEY"],
        spool_dir=os.environ.get("RELAY_SPOOL_DIR", "data/relay-spool"),
        default_destination=os.environ["RELAY_WEBHOOK_URL"],
    ) as relay:
        seconds = float(os.environ.get("AUTOINTEL_SECONDS", "20"))
        async with AutoIntelBot(relay, seconds) as bot:
            await bot.start(os.environ["DISCORD_TOKEN"])


if __name__ == "__main__":
    asyncio.run(main())
