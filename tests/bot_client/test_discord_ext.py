"""The ``/retrieve_results`` cog, driven with stand-ins for discord.py interactions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord.ext import commands

from bot_client import RelayClient, Requester
from bot_client.discord_ext import NOT_FOUND, UNAVAILABLE, RelayCog
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook, free_port
from tests.bot_client.conftest import FAST_RETRY
from tests.support import ACME_KEY, USER_ID

GUILD = "556677889900112233"
OTHER_GUILD = "556677889900112299"
STRANGER = "778899001122334455"
MANAGER = "889900112233445566"


@dataclass
class Recorder:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))


@dataclass
class Sent:
    content: str
    kwargs: dict[str, Any]


def interaction(
    user_id: str = USER_ID, *, manage_guild: bool = False, guild_id: str | None = GUILD
) -> SimpleNamespace:
    return SimpleNamespace(
        user=SimpleNamespace(
            id=int(user_id), guild_permissions=SimpleNamespace(manage_guild=manage_guild)
        ),
        guild_id=int(guild_id) if guild_id else None,
        guild=SimpleNamespace(id=int(guild_id)) if guild_id else None,
        response=SimpleNamespace(defer=Recorder(), send_message=Recorder()),
        followup=SimpleNamespace(send=Recorder()),
    )


async def run(cog: RelayCog, who: SimpleNamespace, workflow_id: str | None = None) -> Sent:
    """Invoke the command's callback as discord.py would; the one ephemeral answer it sent."""
    await cog.retrieve_results.callback(cog, who, workflow_id)  # type: ignore[arg-type]
    assert who.response.defer.calls == [((), {"ephemeral": True, "thinking": True})]
    [(args, kwargs)] = who.followup.send.calls
    assert kwargs.pop("ephemeral") is True
    assert kwargs.pop("allowed_mentions").to_dict() == {"parse": []}  # pings nobody
    return Sent(args[0], kwargs)


@pytest.fixture
async def cog(relay: RelayClient) -> AsyncIterator[RelayCog]:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))
    cog = RelayCog(bot, relay)
    await bot.add_cog(cog)
    yield cog
    await bot.close()


async def submit(
    relay: RelayClient, hook: EmulatedWebhook, workflow_id: str, *, user: str = USER_ID, **kw: Any
) -> None:
    await relay.submit_result(
        workflow_id=workflow_id,
        results=kw.pop("results", {"summary": "No manipulation found", "score": 0.12}),
        url="https://youtube.com/watch?v=abc",
        destination=hook.url,
        requester=Requester(user_id=user, guild_id=GUILD),
        **kw,
    )


async def test_the_command_is_registered_on_the_bot(cog: RelayCog) -> None:
    command = cog.bot.tree.get_command("retrieve_results")
    assert command is not None
    assert [p.name for p in command.parameters] == ["workflow_id"]  # type: ignore[union-attr]


async def test_the_requester_sees_their_result(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook
) -> None:
    await submit(relay, hook, "wf_1")
    sent = await run(cog, interaction(), "wf_1")
    assert "**Result `wf_1`** (pending)" in sent.content
    assert '"summary": "No manipulation found"' in sent.content
    assert sent.kwargs == {}  # no file


async def test_another_user_is_refused_as_if_it_did_not_exist(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook
) -> None:
    await submit(relay, hook, "wf_1")
    refused = await run(cog, interaction(STRANGER), "wf_1")
    missing = await run(cog, interaction(STRANGER), "wf_nope")
    assert refused.content == NOT_FOUND.format(workflow_id="wf_1")
    assert missing.content == NOT_FOUND.format(workflow_id="wf_nope")
    assert "No manipulation" not in refused.content


async def test_a_server_manager_sees_results_of_their_own_server_only(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook
) -> None:
    await submit(relay, hook, "wf_1")
    manager = await run(cog, interaction(MANAGER, manage_guild=True), "wf_1")
    assert "No manipulation found" in manager.content
    elsewhere = await run(
        cog, interaction(MANAGER, manage_guild=True, guild_id=OTHER_GUILD), "wf_1"
    )
    assert elsewhere.content == NOT_FOUND.format(workflow_id="wf_1")


async def test_a_missing_id_is_not_found(cog: RelayCog) -> None:
    sent = await run(cog, interaction(), "wf_missing")
    assert sent.content == NOT_FOUND.format(workflow_id="wf_missing")


async def test_an_id_with_markup_cannot_break_out_of_its_code_span(cog: RelayCog) -> None:
    sent = await run(cog, interaction(), "x` @everyone `y")
    assert "`x' @everyone 'y`" in sent.content


async def test_without_an_id_the_user_gets_their_undelivered_results(
    cog: RelayCog,
    relay: RelayClient,
    emulator: DiscordEmulator,
    hook: EmulatedWebhook,
    worker: Worker,
) -> None:
    # given two results of the user and one of someone else on a webhook that was deleted,
    # and one of the user that was delivered
    delivered_hook = emulator.create_webhook()
    await submit(relay, delivered_hook, "wf_ok")
    for workflow_id in ("wf_lost_1", "wf_lost_2"):
        await submit(relay, hook, workflow_id)
    await submit(relay, hook, "wf_theirs", user=STRANGER)
    emulator.delete_webhook(hook.id)
    await worker.drain()
    # when the user runs the command without an id
    sent = await run(cog, interaction())
    # then only their orphaned ones are listed
    assert "`wf_lost_1`" in sent.content and "`wf_lost_2`" in sent.content
    assert "wf_theirs" not in sent.content and "wf_ok" not in sent.content
    assert "/retrieve_results workflow_id:" in sent.content
    # and one of them shows why it was not delivered
    shown = await run(cog, interaction(), "wf_lost_1")
    assert "(orphaned)" in shown.content and "Not delivered:" in shown.content


async def test_without_an_id_and_nothing_lost_says_so(cog: RelayCog) -> None:
    sent = await run(cog, interaction())
    assert sent.content == "You have no undelivered results right now."


async def test_a_result_too_long_for_a_message_comes_as_a_file(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook
) -> None:
    results = {"transcript": "word " * 1000, "score": 0.5}
    await submit(relay, hook, "wf_long", results=results)
    sent = await run(cog, interaction(), "wf_long")
    assert len(sent.content) <= 2000 and "attached" in sent.content
    file = sent.kwargs["file"]
    assert isinstance(file, discord.File)
    assert file.filename == "results-wf_long.json"
    assert json.loads(file.fp.read()) == results


async def test_an_unreachable_service_gets_a_polite_answer() -> None:
    async with RelayClient(
        f"http://127.0.0.1:{free_port()}", api_key=ACME_KEY, retries=FAST_RETRY
    ) as down:
        bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))
        sent = await run(RelayCog(bot, down), interaction(), "wf_1")
        await bot.close()
    assert sent.content == UNAVAILABLE
