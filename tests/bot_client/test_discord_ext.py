"""The ``/retrieve_results`` cog, driven with stand-ins for discord.py interactions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import discord
import httpx
import pytest
from discord.ext import commands

from bot_client import Destination, RelayClient, Requester, RunCreate
from bot_client.discord_ext import NOT_FOUND, UNAVAILABLE, RelayCog
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook, free_port
from tests.bot_client.conftest import FAST_RETRY
from tests.conftest import Clock
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


async def run(
    cog: RelayCog, who: SimpleNamespace, workflow_id: str | None = None, **options: str
) -> Sent:
    """Invoke the command's callback as discord.py would; the one ephemeral answer it sent."""
    await cog.retrieve_results.callback(cog, who, workflow_id, **options)  # type: ignore[arg-type]
    assert who.response.defer.calls == [((), {"ephemeral": True, "thinking": True})]
    [(args, kwargs)] = who.followup.send.calls
    assert kwargs.pop("ephemeral") is True
    assert kwargs.pop("allowed_mentions").to_dict() == {"parse": []}  # pings nobody
    return Sent(args[0], kwargs)


@pytest.fixture
async def cog(relay: RelayClient, clock: Clock) -> AsyncIterator[RelayCog]:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))
    cog = RelayCog(bot, relay, now=lambda: datetime.fromtimestamp(clock(), UTC))
    await bot.add_cog(cog)
    yield cog
    await bot.close()


async def submit(
    relay: RelayClient, hook: EmulatedWebhook, workflow_id: str, *, user: str = USER_ID, **kw: Any
) -> None:
    await relay.submit_result(
        workflow_id=workflow_id,
        results=kw.pop("results", {"summary": "No manipulation found", "score": 0.12}),
        url=kw.pop("url", "https://youtube.com/watch?v=abc"),
        destination=hook.url,
        requester=Requester(user_id=user, guild_id=GUILD),
        **kw,
    )


async def start_run(
    relay: RelayClient,
    hook: EmulatedWebhook,
    workflow_id: str,
    *,
    user: str = USER_ID,
    url: str | None = None,
    progress: tuple[str, int, int] | None = None,
) -> None:
    await relay.start_run(
        RunCreate(
            workflow_id=workflow_id,
            destination=Destination(webhook_url=hook.url),
            requester=Requester(user_id=user, guild_id=GUILD),
            url=url,
        )
    )
    if progress is not None:
        await relay.progress(workflow_id, *progress)


async def complete(cog: RelayCog, who: SimpleNamespace, typed: str) -> list[tuple[str, str]]:
    """The autocomplete's answer as discord.py would get it, as (label, value)."""
    got = await cog.workflow_id_choices(who, typed)  # type: ignore[arg-type]
    return [(c.name, c.value) for c in got]


async def test_the_command_is_registered_on_the_bot(cog: RelayCog) -> None:
    command = cog.bot.tree.get_command("retrieve_results")
    assert command is not None
    parameters = {p.name: p for p in command.parameters}  # type: ignore[union-attr]
    assert list(parameters) == ["workflow_id", "url", "since", "until"]
    assert parameters["workflow_id"].autocomplete
    assert not any(p.required for p in parameters.values())
    assert (parameters["url"].min_value, parameters["url"].max_value) == (1, 100)


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


async def test_without_an_id_the_user_gets_their_own_results_and_runs(
    cog: RelayCog,
    relay: RelayClient,
    emulator: DiscordEmulator,
    hook: EmulatedWebhook,
    worker: Worker,
    clock: Clock,
) -> None:
    # given a delivered result, two on a webhook that was deleted, someone else's, and a run
    # of the user still going
    delivered_hook = emulator.create_webhook()
    await submit(relay, delivered_hook, "wf_ok")
    for workflow_id in ("wf_lost_1", "wf_lost_2"):
        clock.advance(1)
        await submit(relay, hook, workflow_id)
    await submit(relay, hook, "wf_theirs", user=STRANGER)
    emulator.delete_webhook(hook.id)
    await worker.drain()
    clock.advance(1)
    await start_run(relay, hook, "wf_going", progress=("analysing", 3, 10))
    # when the user runs the command without an id
    sent = await run(cog, interaction())
    # then their own are listed, newest first, with their status, the run with its progress
    lines = sent.content.splitlines()
    assert lines[0] == "Your results and runs, newest first:"
    assert [line.split("`")[1] for line in lines[1:-1]] == [
        "wf_going",
        "wf_lost_2",
        "wf_lost_1",
        "wf_ok",
    ]
    assert "run running analysing 3/10" in lines[1]
    assert "result orphaned" in lines[2] and "result delivered" in lines[4]
    assert "wf_theirs" not in sent.content
    assert "/retrieve_results workflow_id:" in lines[-1]
    # and one of them shows why it was not delivered
    shown = await run(cog, interaction(), "wf_lost_1")
    assert "(orphaned)" in shown.content and "Not delivered:" in shown.content


async def test_the_listing_is_narrowed_by_url_and_time(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook, clock: Clock
) -> None:
    # given results two days apart, with different URLs, one whose id holds the URL's text
    await submit(relay, hook, "wf_old", url="https://YouTube.com/watch?v=1")
    clock.advance(2 * 86400)
    await submit(relay, hook, "wf_new", url="https://youtube.com/watch?v=2")
    await submit(relay, hook, "wf_youtube_but_vimeo", url="https://vimeo.com/3")
    clock.advance(1)
    await start_run(relay, hook, "wf_run", url="https://youtube.com/watch?v=4")

    async def listed(**options: str) -> list[str]:
        lines = (await run(cog, interaction(), **options)).content.splitlines()
        return [line.split("`")[1] for line in lines[1:-1]]

    # then url is a piece of the URL, in either case, never of the id
    assert await listed(url="YOUTUBE.com") == ["wf_run", "wf_new", "wf_old"]
    assert await listed(url="watch?v=1") == ["wf_old"]
    # and since and until take ages, dates and times
    assert await listed(since="1d") == ["wf_run", "wf_youtube_but_vimeo", "wf_new"]
    assert await listed(url="youtube", until="1d") == ["wf_old"]
    day = datetime.fromtimestamp(clock(), UTC).date().isoformat()
    assert await listed(since=day, url="vimeo") == ["wf_youtube_but_vimeo"]
    nothing = await run(cog, interaction(), url="dailymotion")
    assert nothing.content == "You have no results or runs matching those options."


async def test_a_bad_time_gets_a_clear_message_before_any_lookup() -> None:
    # given a relay that is down: any lookup would answer UNAVAILABLE
    async with RelayClient(
        f"http://127.0.0.1:{free_port()}", api_key=ACME_KEY, retries=FAST_RETRY
    ) as down:
        bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))
        cog = RelayCog(bot, down)
        # when a time option is neither a date, a time nor an age, or they are the wrong way
        sent = await run(cog, interaction(), since="last tuesday")
        backwards = await run(cog, interaction(), "wf_1", since="1d", until="2d")
        await bot.close()
    # then the user is told what is wrong, and how to write it
    assert sent.content.startswith("`last tuesday` is not a time I understand.")
    assert "30m, 6h, 2d" in sent.content
    assert backwards.content == "`since` must be before `until`."


async def test_an_id_whose_result_is_not_in_shows_its_run_to_its_requester_only(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook
) -> None:
    # given a run of the user, still going
    await start_run(relay, hook, "wf_going", progress=("analysing", 3, 10))
    # when the user, a manager of its server and a stranger ask for it
    mine = await run(cog, interaction(), "wf_going")
    manager = await run(cog, interaction(MANAGER, manage_guild=True), "wf_going")
    stranger = await run(cog, interaction(STRANGER), "wf_going")
    # then the first two see the run, the stranger hears it does not exist
    assert mine.content.startswith("**Run `wf_going`** (running analysing 3/10)")
    assert "not in yet" in mine.content
    assert manager.content == mine.content
    assert stranger.content == NOT_FOUND.format(workflow_id="wf_going")


async def test_someone_elses_runs_stay_out_of_the_listing_even_for_a_manager(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook
) -> None:
    await start_run(relay, hook, "wf_theirs", user=STRANGER)
    sent = await run(cog, interaction(MANAGER, manage_guild=True))
    assert sent.content == "You have no results or runs right now."


async def test_without_an_id_and_nothing_there_says_so(cog: RelayCog) -> None:
    sent = await run(cog, interaction())
    assert sent.content == "You have no results or runs right now."


async def test_autocomplete_offers_the_users_recent_ids_matching_what_they_typed(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook, clock: Clock
) -> None:
    # given results and runs of the user, and of someone else
    await submit(relay, hook, "wf_nightly_1")
    clock.advance(1)
    await start_run(relay, hook, "wf_nightly_2", progress=("download", 1, 3))
    clock.advance(1)
    await submit(relay, hook, "wf_weekly", url="https://vimeo.com/NIGHTLY")
    await submit(relay, hook, "wf_nightly_theirs", user=STRANGER)
    # when the user types part of an id
    got = await complete(cog, interaction(), "Nightly")
    # then their own ids holding it (in the id or the URL) come, newest first, with a status
    assert got == [
        ("wf_weekly · result pending", "wf_weekly"),
        ("wf_nightly_2 · run running download 1/3", "wf_nightly_2"),
        ("wf_nightly_1 · result pending", "wf_nightly_1"),
    ]
    assert [v for _, v in await complete(cog, interaction(), "")] == [
        "wf_weekly",
        "wf_nightly_2",
        "wf_nightly_1",
    ]
    assert await complete(cog, interaction(), "nothing like it") == []


async def test_autocomplete_keeps_to_25_choices(
    cog: RelayCog, relay: RelayClient, hook: EmulatedWebhook, clock: Clock
) -> None:
    for n in range(30):
        await submit(relay, hook, f"wf_{n:02}")
        clock.advance(1)
    got = await complete(cog, interaction(), "wf_")
    assert [v for _, v in got] == [f"wf_{n:02}" for n in reversed(range(5, 30))]


async def test_autocomplete_that_fails_answers_no_choices() -> None:
    # given a relay that is down, and one that never answers
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with (
        RelayClient(
            f"http://127.0.0.1:{free_port()}", api_key=ACME_KEY, retries=FAST_RETRY
        ) as down,
        RelayClient(
            "http://relay", api_key=ACME_KEY, transport=httpx.MockTransport(hang)
        ) as silent,
    ):
        bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))
        # then both answer an empty list, the silent one once its time is up
        assert await complete(RelayCog(bot, down), interaction(), "wf") == []
        slow = RelayCog(bot, silent, autocomplete_seconds=0.05)
        assert await complete(slow, interaction(), "wf") == []
        await bot.close()


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
