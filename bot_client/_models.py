"""Typed bodies: what the bot sends (``ResultSubmission`` and its parts) and what the service
answers (``ResultRecord``, ``ResultSummary``, ``DestinationInfo``, ``Attempt``...).

Request models check types only; the service owns the rules (it answers 422 with a code), so the
two cannot drift apart. Response models ignore fields they do not know, so a newer service does
not break an older bot.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot_client._embeds import embed_to_dict
from bot_client._interaction import InteractionRef, Requester, Snowflake
from bot_client._json import check_body, check_json

Status = Literal["pending", "delivered", "orphaned"]
Route = Literal["webhook", "interaction"]


class Destination(BaseModel):
    """Where a result goes: a channel webhook URL, or the name of a registered destination,
    optionally into a thread. The URL holds the webhook's token: it is left out of ``repr``."""

    model_config = ConfigDict(frozen=True)

    webhook_url: str | None = Field(default=None, repr=False)
    name: str | None = None
    thread_id: Snowflake | None = None


class Message(BaseModel):
    """The bot's own message for a result; the service splits it to fit Discord's limits.

    ``embeds`` takes dicts, ``discord_webhook.DiscordEmbed`` and ``discord.Embed`` objects and
    keeps them as plain Discord embed dicts.
    """

    model_config = ConfigDict(frozen=True)

    content: str | None = None
    embeds: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("embeds", mode="before")
    @classmethod
    def _plain_embeds(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [embed_to_dict(embed) for embed in value]
        return value


DestinationInput = str | Destination | Mapping[str, Any]
MessageInput = Message | Mapping[str, Any]


def as_destination(value: DestinationInput) -> Destination:
    """A webhook URL string, a ``Destination``, or its fields as a mapping."""
    if isinstance(value, Destination):
        return value
    if isinstance(value, str):
        return Destination(webhook_url=value)
    return Destination.model_validate(dict(value))


class ResultSubmission(BaseModel):
    """The body of ``POST /v1/results``."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    results: dict[str, Any]
    url: str | None = None
    depth: str | None = None
    message: Message | None = None
    destination: Destination | None = None
    interaction: InteractionRef | None = None
    requester: Requester | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body; the same submission always gives the same body (idempotency).

        Raises ``UnserializableResult`` when a value cannot go as JSON as it is (NaN, a set,
        bytes, a lone surrogate...): pydantic would quietly turn NaN into null and a set into a
        list whose order changes between processes. The raw ``results`` and embeds are checked
        before pydantic converts them, the whole body after."""
        check_json(self.results, "results")
        if self.message is not None:
            check_json(self.message.embeds, "message.embeds")
        body = self.model_dump(mode="json", exclude_none=True)
        check_body(body)
        return body

    def secrets(self) -> list[str]:
        """The tokens this body carries, to mask wherever text about it is shown."""
        found: list[str] = []
        if self.destination is not None and self.destination.webhook_url:
            found.append(self.destination.webhook_url)
        if self.interaction is not None:
            found.append(self.interaction.token)
        return found


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DestinationInfo(_Answer):
    """A destination as the service shows it: the webhook id, never its token."""

    name: str | None = None
    webhook_id: str
    thread_id: str | None = None


class InteractionInfo(_Answer):
    application_id: str
    interaction_id: str
    expires_at: datetime


class DeliveredMessage(_Answer):
    """One Discord message (part) that carried the result."""

    part: int
    message_id: str
    route: Route
    delivered_at: datetime


class RetrievalInfo(_Answer):
    command: str
    reason: str | None = None


class ResultSummary(_Answer):
    """A result as listed: everything but the results themselves."""

    workflow_id: str
    status: Status
    url: str | None = None
    depth: str | None = None
    destination: DestinationInfo | None = None
    interaction: InteractionInfo | None = None
    requester: Requester | None = None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    attempts: int = 0  # every delivery attempt made
    counted_attempts: int = 0  # those that used up the retry budget
    last_error: str | None = None
    messages: list[DeliveredMessage] = Field(default_factory=list)
    retrieval_info: RetrievalInfo


class ResultRecord(ResultSummary):
    """The full record of ``GET /v1/results/{workflow_id}``."""

    results: dict[str, Any]
    message: dict[str, Any] | None = None


class ResultPage(_Answer):
    items: list[ResultSummary]
    next_cursor: str | None = None


class Attempt(_Answer):
    """One delivery attempt; ``counted`` is false for 429s and interaction fallbacks."""

    at: datetime
    part: int
    route: Route
    outcome: str
    http_status: int | None = None
    discord_code: int | None = None
    duration_ms: float
    error: str | None = None
    counted: bool = True
