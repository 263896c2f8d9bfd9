"""discord.py integration (extra ``discord``): the ``/retrieve_results`` command as a cog.

    await bot.add_cog(RelayCog(bot, relay))

``/retrieve_results workflow_id:`` shows one result (or, while its result is not in, its run);
without a ``workflow_id`` it lists the user's own results and runs, narrowed by ``url``,
``since`` and ``until``. ``workflow_id`` autocompletes from the user's recent ones.

Only the requester of a result or run, or a member with Manage Server in its own server, sees
it; everyone else gets the same polite answer as for an unknown id, so nobody learns what exists.
Every answer is ephemeral. This is the only module that imports discord.py; what it shows is
worked out in ``bot_client._retrieve``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot_client._client import RelayClient
from bot_client._exceptions import NotFoundError, RelayError
from bot_client._interaction import Requester
from bot_client._models import ResultRecord, ResultSummary, Run
from bot_client._retrieve import (
    CHOICES_LIMIT,
    CONTENT_LIMIT,
    Entry,
    Query,
    choices,
    code_text,
    contains,
    entries,
    read_options,
    render_listing,
    render_run,
    search_text,
    short,
)

__all__ = ["RelayCog", "can_view", "render_record"]

log = logging.getLogger("bot_client.discord")

DEFAULT_FILE_LIMIT = 10 * 1024 * 1024  # Discord's default upload limit
RECENT = 10
# Discord drops an autocomplete answer after 3 s: give up well before, with no choices.
AUTOCOMPLETE_SECONDS = 2.0
# How many of the user's results (and as many runs) a listing looks through for a url.
SCAN = 200

NOT_FOUND = (
    "I can't find a result `{workflow_id}` that you can view. Check the id, or run "
    "`/retrieve_results` without one to list your recent results and runs."
)
UNAVAILABLE = (
    "The result service can't be reached right now. Your results are kept safe; "
    "please try again in a few minutes."
)

_Item = TypeVar("_Item")


@dataclass(frozen=True, slots=True)
class Reply:
    """Text and an optional JSON attachment (filename, bytes)."""

    content: str
    attachment: tuple[str, bytes] | None = None


class _Owned(Protocol):
    @property
    def requester(self) -> Requester | None: ...


def can_view(record: _Owned, interaction: discord.Interaction) -> bool:
    """The requester always; a Manage Server member only for results (and runs) of that same
    server."""
    requester = record.requester
    if requester is None:
        return False
    if requester.user_id is not None and requester.user_id == str(interaction.user.id):
        return True
    permissions = getattr(interaction.user, "guild_permissions", None)
    manager = bool(permissions is not None and permissions.manage_guild)
    guild_id = interaction.guild_id
    return manager and guild_id is not None and requester.guild_id == str(guild_id)


def _header(record: ResultSummary) -> list[str]:
    lines = [f"**Result `{code_text(record.workflow_id)}`** ({record.status})"]
    if record.url:
        lines.append(f"Source: <{short(record.url, 300)}>")
    if record.depth:
        lines.append(f"Depth: {short(record.depth, 64)}")
    lines.append(f"Finished: <t:{int(record.created_at.timestamp())}:f>")
    if record.status == "orphaned" and record.retrieval_info.reason:
        lines.append(f"Not delivered: {short(record.retrieval_info.reason, 200)}")
    return lines


def render_record(record: ResultRecord, *, file_limit: int = DEFAULT_FILE_LIMIT) -> Reply:
    """The result as one message; when the results do not fit, as an attached JSON file."""
    header = "\n".join(_header(record))
    pretty = json.dumps(record.results, indent=2, ensure_ascii=False)
    inline = f"{header}\n```json\n{pretty}\n```"
    if len(inline) <= CONTENT_LIMIT:
        return Reply(inline)
    data = pretty.encode()
    if len(data) > file_limit:
        return Reply(
            f"{header}\nThe results are too large to attach here "
            f"({len(data) // 1024} KiB); an operator can read them from the relay's REST API."
        )
    return Reply(
        f"{header}\nThe results are too long for a message: they are attached.",
        attachment=(f"results-{record.workflow_id}.json", data),
    )


async def _first(
    items: AsyncIterator[_Item], keep: Callable[[_Item], bool], count: int, scan: int
) -> list[_Item]:
    """The first ``count`` items ``keep`` takes, looking at no more than ``scan``."""
    kept: list[_Item] = []
    seen = 0
    async for item in items:
        seen += 1
        if keep(item):
            kept.append(item)
        if len(kept) == count or seen == scan:
            break
    return kept


class RelayCog(commands.Cog):
    """``/retrieve_results [workflow_id] [url] [since] [until]``: a result, or the user's
    recent results and runs."""

    def __init__(
        self,
        bot: commands.Bot,
        client: RelayClient,
        *,
        recent: int = RECENT,
        autocomplete_seconds: float = AUTOCOMPLETE_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bot = bot
        self.client = client
        self.recent = recent
        self.autocomplete_seconds = autocomplete_seconds
        self.now = now  # what an age such as 2d counts back from

    @app_commands.command(
        name="retrieve_results", description="Show a result the relay kept for you, or list yours"
    )
    @app_commands.describe(
        workflow_id="The id from the result; leave it out to list yours",
        url="List those whose URL holds this",
        since="List those from this time on: 2026-12-01, 2026-12-01T14:30 (UTC), or 30m, 6h, 2d",
        until="List those before this time: a date (that whole day), a date and time, or an age",
    )
    async def retrieve_results(
        self,
        interaction: discord.Interaction,
        workflow_id: str | None = None,
        url: app_commands.Range[str, 1, 100] | None = None,
        since: app_commands.Range[str, 1, 40] | None = None,
        until: app_commands.Range[str, 1, 40] | None = None,
    ) -> None:
        # The lookup goes over the network (with retries): answer Discord within 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        options = read_options(url, since, until, now=self.now())
        try:
            if isinstance(options, str):
                reply = Reply(options)
            elif workflow_id and workflow_id.strip():
                reply = await self._one(interaction, workflow_id.strip())
            else:
                reply = await self._mine(interaction, options)
        except RelayError as exc:
            log.warning("retrieve_results: relay unavailable", extra={"error_code": exc.code})
            reply = Reply(UNAVAILABLE)
        kwargs: dict[str, Any] = {}
        if reply.attachment is not None:
            filename, data = reply.attachment
            kwargs["file"] = discord.File(io.BytesIO(data), filename=filename)
        await interaction.followup.send(
            reply.content,
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
            **kwargs,
        )

    @retrieve_results.autocomplete("workflow_id")
    async def workflow_id_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The user's own recent workflow ids holding what they typed, newest first. Any
        failure, or no answer in time, is no choices: the user can still type the id."""
        try:
            async with asyncio.timeout(self.autocomplete_seconds):
                listed = await self._recent(interaction, search_text(current), CHOICES_LIMIT)
        except Exception as exc:  # an autocomplete must answer, whatever went wrong
            log.warning(
                "retrieve_results: no autocomplete choices",
                extra={"error_type": exc.__class__.__name__},
            )
            return []
        return [
            app_commands.Choice(name=name, value=value) for name, value in choices(listed, current)
        ]

    async def _recent(
        self, interaction: discord.Interaction, q: str | None, limit: int
    ) -> list[Entry]:
        """One page of the user's results and one of their runs, as entries."""
        user = interaction.user.id
        results, runs = await asyncio.gather(
            self.client.list_page(q=q, requester_id=user, limit=limit),
            self.client.list_run_page(q=q, requester_id=user, limit=limit),
        )
        return entries(
            [r for r in results.items if can_view(r, interaction)],
            [r for r in runs.items if can_view(r, interaction)],
        )

    async def _one(self, interaction: discord.Interaction, workflow_id: str) -> Reply:
        refusal = Reply(NOT_FOUND.format(workflow_id=code_text(workflow_id)))
        try:
            record = await self.client.get_result(workflow_id)
        except NotFoundError:
            return await self._run(interaction, workflow_id, refusal)
        if not can_view(record, interaction):
            return refusal
        limit = getattr(interaction, "filesize_limit", None) or DEFAULT_FILE_LIMIT
        return render_record(record, file_limit=limit)

    async def _run(
        self, interaction: discord.Interaction, workflow_id: str, refusal: Reply
    ) -> Reply:
        """No result under that id: its run, while the result is not in."""
        try:
            run = await self.client.get_run(workflow_id)
        except NotFoundError:
            return refusal
        return Reply(render_run(run)) if can_view(run, interaction) else refusal

    async def _mine(self, interaction: discord.Interaction, options: Query) -> Reply:
        """The user's results and runs matching the options, newest first, a short page."""
        user = interaction.user.id
        wanted = options.url

        def keep(item: ResultSummary | Run) -> bool:
            return can_view(item, interaction) and (wanted is None or contains(item.url, wanted))

        # q narrows on the service's side, to ids or URLs holding the text; keep() to URLs.
        # Without a url every row is kept: one page of each is enough.
        size = self.recent if wanted is None else 50
        since, until = options.since, options.until
        results, runs = await asyncio.gather(
            _first(
                self.client.list_results(
                    q=wanted, requester_id=user, since=since, until=until, page_size=size
                ),
                keep,
                self.recent,
                SCAN,
            ),
            _first(
                self.client.list_runs(
                    q=wanted, requester_id=user, since=since, until=until, page_size=size
                ),
                keep,
                self.recent,
                SCAN,
            ),
        )
        listed = entries(results, runs)[: self.recent]
        return Reply(render_listing(listed, filtered=options.filtered, limit=CONTENT_LIMIT))
