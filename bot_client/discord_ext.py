"""discord.py integration (extra ``discord``): the ``/retrieve_results`` command as a cog.

    await bot.add_cog(RelayCog(bot, relay))

Only the requester of a result, or a member with Manage Server in the result's own server, sees
it; everyone else gets the same polite answer as for an unknown id, so nobody learns what exists.
Every answer is ephemeral. This is the only module that imports discord.py.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot_client._client import RelayClient
from bot_client._exceptions import NotFoundError, RelayError
from bot_client._models import ResultRecord, ResultSummary

__all__ = ["RelayCog", "can_view", "render_record"]

log = logging.getLogger("bot_client.discord")

CONTENT_LIMIT = 2000
DEFAULT_FILE_LIMIT = 10 * 1024 * 1024  # Discord's default upload limit
RECENT = 10

NOT_FOUND = (
    "I can't find a result `{workflow_id}` that you can view. Check the id, or run "
    "`/retrieve_results` without one to list your undelivered results."
)
UNAVAILABLE = (
    "The result service can't be reached right now. Your results are kept safe; "
    "please try again in a few minutes."
)
NONE_ORPHANED = "You have no undelivered results right now."


@dataclass(frozen=True, slots=True)
class Reply:
    """Text and an optional JSON attachment (filename, bytes)."""

    content: str
    attachment: tuple[str, bytes] | None = None


def _id_for_text(workflow_id: str) -> str:
    """A user-typed id, safe inside inline code."""
    return workflow_id.replace("`", "'")[:128]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def can_view(record: ResultSummary, interaction: discord.Interaction) -> bool:
    """The requester always; a Manage Server member only for results of that same server."""
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
    lines = [f"**Result `{_id_for_text(record.workflow_id)}`** ({record.status})"]
    if record.url:
        lines.append(f"Source: <{_short(record.url, 300)}>")
    if record.depth:
        lines.append(f"Depth: {_short(record.depth, 64)}")
    lines.append(f"Finished: <t:{int(record.created_at.timestamp())}:f>")
    if record.status == "orphaned" and record.retrieval_info.reason:
        lines.append(f"Not delivered: {_short(record.retrieval_info.reason, 200)}")
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


def _listing(items: list[ResultSummary]) -> Reply:
    if not items:
        return Reply(NONE_ORPHANED)
    footer = "\nShow one with `/retrieve_results workflow_id:<id>`."
    lines = ["Your undelivered results, newest first:"]
    for item in items:
        line = f"• `{_id_for_text(item.workflow_id)}` <t:{int(item.created_at.timestamp())}:R>"
        if item.url:
            line += f" <{_short(item.url, 200)}>"
        if len("\n".join([*lines, line])) + len(footer) > CONTENT_LIMIT:
            break
        lines.append(line)
    return Reply("\n".join(lines) + footer)


class RelayCog(commands.Cog):
    """``/retrieve_results [workflow_id]``: a result, or the user's undelivered ones."""

    def __init__(self, bot: commands.Bot, client: RelayClient, *, recent: int = RECENT) -> None:
        self.bot = bot
        self.client = client
        self.recent = recent

    @app_commands.command(
        name="retrieve_results", description="Show a result the relay kept for you"
    )
    @app_commands.describe(workflow_id="The id from the result; leave it out to list yours")
    async def retrieve_results(
        self, interaction: discord.Interaction, workflow_id: str | None = None
    ) -> None:
        # The lookup goes over the network (with retries): answer Discord within 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if workflow_id:
                reply = await self._one(interaction, workflow_id.strip())
            else:
                reply = await self._mine(interaction)
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

    async def _one(self, interaction: discord.Interaction, workflow_id: str) -> Reply:
        refusal = Reply(NOT_FOUND.format(workflow_id=_id_for_text(workflow_id)))
        try:
            record = await self.client.get_result(workflow_id)
        except NotFoundError:
            return refusal
        if not can_view(record, interaction):
            return refusal
        limit = getattr(interaction, "filesize_limit", None) or DEFAULT_FILE_LIMIT
        return render_record(record, file_limit=limit)

    async def _mine(self, interaction: discord.Interaction) -> Reply:
        page = await self.client.list_page(
            status="orphaned", requester_id=interaction.user.id, limit=self.recent
        )
        return _listing(page.items)
