"""``result-relay demo``: the whole loop on this machine, no Discord account needed.

It starts the Discord emulator and the service on free local ports, plays a bot that hands over a
few results, waits for the worker, and prints what "Discord" received and how to read back what
could not be delivered. Everything lives in a temporary folder and stops at the end, unless
``keep``: then both stay up until Ctrl-C and the commands to try them are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from service.app import create_app
from service.config import load_settings
from service.crypto import generate_key
from service.testing import AppServer, DiscordEmulator, EmulatorServer, ReceivedMessage

SETTLE_SECONDS = 30.0
Say = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Scenario:
    workflow_id: str
    story: str
    body: dict[str, Any]


def run_demo(out: TextIO, *, keep: bool = False, log_path: Path | None = None) -> int:
    """Run the demo, writing to ``out``; 0 when every result ended as the story says.

    With ``keep``, the emulator and the service stay up (their data too) until Ctrl-C."""

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    api_key = f"demo-{secrets.token_urlsafe(16)}"
    emulator = DiscordEmulator()
    folder = tempfile.mkdtemp(prefix="result-relay-demo-")
    try:
        with EmulatorServer(emulator) as discord:
            settings = load_settings(
                database_url=f"sqlite:///{folder}/relay.db",
                api_keys=f"demo:{api_key}",
                discord_api_base=discord.api_base,
                secret_key=generate_key(),  # the database lives as long as the demo
            )
            with AppServer(create_app(settings), name="result-relay") as relay:
                say("result-relay demo")
                say(f"  Discord emulator  {discord.api_base}")
                say(f"  result-relay      {relay.base_url}   (SQLite in {folder})")
                if log_path is not None:
                    say(f"  log lines         {log_path}")
                say()
                code, orphaned = asyncio.run(_play_bot(relay.base_url, api_key, emulator, say))
                if not keep:
                    say()
                    say("Both servers have stopped. To try the API yourself, run")
                    say("  result-relay demo --keep")
                    say("which leaves them running and prints the commands to use.")
                    return code
                _show_next_steps(say, relay.base_url, api_key, orphaned)
                _wait_for_interrupt()
                say("Stopped.")
                return code
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _wait_for_interrupt() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def _show_next_steps(say: Say, base_url: str, api_key: str, orphaned: list[str]) -> None:
    wanted = orphaned[0] if orphaned else "wf_short"
    say()
    say("The emulator and the service keep running. Try, in another terminal:")
    say(f"  curl -H 'Authorization: Bearer {api_key}' {base_url}/v1/results/{wanted}")
    say(f"  curl -H 'Authorization: Bearer {api_key}' '{base_url}/v1/results?status=orphaned'")
    say("With the example bot pointed at this service")
    say(
        f"  RELAY_URL={base_url} RELAY_API_KEY={api_key} DISCORD_TOKEN=<your bot token> "
        "RELAY_WEBHOOK_URL=<a channel webhook URL> python -m bot_client.examples.autointel_bot"
    )
    say("type in Discord:")
    say(f"  /retrieve_results workflow_id:{wanted}")
    say("Press Ctrl-C to stop.")


async def _play_bot(
    base_url: str, api_key: str, emulator: DiscordEmulator, say: Say
) -> tuple[int, list[str]]:
    channel = emulator.create_webhook(name="analysis-results")
    doomed = emulator.create_webhook(name="old-channel")
    emulator.delete_webhook(doomed.id)  # someone removed it while the analysis ran
    stale = emulator.create_interaction(age_seconds=20 * 60)
    fresh = emulator.create_interaction(age_seconds=90)
    requester = {"user_id": "334455667788990011"}

    def interaction(i: Any) -> dict[str, str]:
        return {
            "application_id": i.application_id,
            "interaction_id": i.interaction_id,
            "token": i.token,
        }

    scenarios = [
        Scenario(
            "wf_short",
            "a short result to a channel webhook",
            {
                "results": {"summary": "No manipulation found.", "deception_score": 0.12},
                "destination": {"webhook_url": channel.url},
                "requester": requester,
            },
        ),
        Scenario(
            "wf_large",
            "a 200 KB result: summary embed plus attached files",
            {
                "results": {
                    "summary": "Long transcript analysed; three claims flagged.",
                    "transcript": ("Speaker: a sentence of the transcript. " * 5200)[:200_000],
                    "claims": [{"text": f"claim {n}", "verdict": "disputed"} for n in range(3)],
                },
                "destination": {"webhook_url": channel.url},
            },
        ),
        Scenario(
            "wf_deleted",
            "a result for a webhook that was deleted: kept as orphaned",
            {
                "results": {"summary": "Nobody will see this in Discord."},
                "destination": {"webhook_url": doomed.url},
            },
        ),
        Scenario(
            "wf_expired",
            "a 20-minute run whose interaction token expired: the channel webhook takes over",
            {
                "results": {"summary": "Finished after 20 minutes.", "@everyone": "pings nobody"},
                "interaction": interaction(stale),
                "destination": {"webhook_url": channel.url},
                "requester": requester,
            },
        ),
        Scenario(
            "wf_followup",
            "a quick run whose token is still valid: answered as an interaction follow-up",
            {
                "results": {"summary": "Done in 90 seconds."},
                "interaction": interaction(fresh),
                "destination": {"webhook_url": channel.url},
            },
        ),
    ]
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as api:
        say("The bot hands over five results (POST /v1/results):")
        for scenario in scenarios:
            body = {
                "workflow_id": scenario.workflow_id,
                "url": "https://youtube.com/watch?v=demo",
                "depth": "standard",
                **scenario.body,
            }
            response = await api.post("/v1/results", json=body)
            record = response.json()
            say(
                f"  {response.status_code} {scenario.workflow_id:<12} {record['status']:<9} "
                f"{scenario.story}"
            )
        say()
        records = await _settled(api, [s.workflow_id for s in scenarios])
        _show_discord(say, emulator, channel.id, fresh.interaction_id)
        orphaned = [r for r in records if r["status"] == "orphaned"]
        _show_orphans(say, orphaned)
        counters = emulator.counters
        say(
            "Discord's counters: "
            f"{counters.total_requests} requests, {counters.payload_400s} refused for shape, "
            f"{counters.payload_413s} too large, {counters.requests_after_404} after a 404, "
            f"{counters.bad_allowed_mentions} without allowed_mentions."
        )
    expected = {
        "wf_short": "delivered",
        "wf_large": "delivered",
        "wf_deleted": "orphaned",
        "wf_expired": "delivered",
        "wf_followup": "delivered",
    }
    ok = {r["workflow_id"]: r["status"] for r in records} == expected
    say("Every result was delivered or kept." if ok else "Some results did not end as expected.")
    return (0 if ok else 1), [r["workflow_id"] for r in orphaned]


async def _settled(api: httpx.AsyncClient, workflow_ids: list[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        records = [(await api.get(f"/v1/results/{w}")).json() for w in workflow_ids]
        if all(r["status"] != "pending" for r in records) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.1)


def _show_discord(
    say: Say, emulator: DiscordEmulator, channel_id: str, interaction_id: str
) -> None:
    say("What Discord received in #analysis-results (channel webhook):")
    for message in emulator.messages(channel_id):
        _show_message(say, message)
    say("... and as interaction follow-ups:")
    for message in emulator.followups(interaction_id):
        _show_message(say, message)
    say()


def _show_message(say: Say, message: ReceivedMessage) -> None:
    content = (message.content or "").replace("\n", " ")
    title = message.embeds[0].get("title", "") if message.embeds else ""
    footer = message.embeds[0].get("footer", {}).get("text", "") if message.embeds else ""
    line = f"  message {message.id}: {title or content[:60]!r}"
    if footer:
        line += f" [{footer}]"
    say(line)
    if content and title:
        say(f"      content: {content[:70]!r}")
    for attachment in message.attachments:
        say(f"      file: {attachment.filename} ({attachment.size / 1024:.0f} KiB)")
    say(f"      allowed_mentions: {json.dumps(message.allowed_mentions)}")


def _show_orphans(say: Say, orphaned: list[dict[str, Any]]) -> None:
    say("Kept as orphaned, for the bot to hand over later:")
    for record in orphaned:
        info = record["retrieval_info"]
        say(f"  {record['workflow_id']}: {info['reason']}")
        say(f"      in Discord:  {info['command']}")
        say(f"      over REST:   GET /v1/results/{record['workflow_id']}")
    say()
