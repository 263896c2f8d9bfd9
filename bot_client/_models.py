"""Typed bodies: what the bot sends (``ResultSubmission``, ``RunCreate`` and their parts) and what
the service answers (``ResultRecord``, ``ResultSummary``, ``Run``, ``DestinationInfo``...).

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
Route = Literal["webhook", "interaction", "channel", "dm"]
RunStatus = Literal["running", "handed_off", "finished", "failed", "abandoned"]


class Destination(BaseModel):
    """Where a result goes: a channel webhook URL, or the name of a registered destination,
    optionally into a thread; and/or ``channel_id``, a channel the tenant's bot posts in (alone,
    or as the fallback after the webhook). The URL holds the webhook's token: it is left out of
    ``repr``."""

    model_config = ConfigDict(frozen=True)

    webhook_url: str | None = Field(default=None, repr=False)
    name: str | None = None
    thread_id: Snowflake | None = None
    channel_id: Snowflake | None = None


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


class RunFailure(BaseModel):
    """Why a run failed: the stage it was in and a short, single-line message (never a
    traceback). Sent with a failed run's result, and shown by the service in ``Run.error``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: str
    message: str


class ResultSubmission(BaseModel):
    """The body of ``POST /v1/results``; with ``error`` it reports a failed run."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    results: dict[str, Any]
    url: str | None = None
    depth: str | None = None
    message: Message | None = None
    destination: Destination | None = None
    interaction: InteractionRef | None = None
    requester: Requester | None = None
    error: RunFailure | None = None
    dm_fallback: bool | None = None  # None: the tenant's default (its bot's)

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
        return _secrets(self.destination, self.interaction)


class RunCreate(BaseModel):
    """The body of ``POST /v1/runs``: a long run has started (the same body again is a no-op)."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    interaction: InteractionRef | None = None
    destination: Destination | None = None
    requester: Requester | None = None
    url: str | None = None
    depth: str | None = None
    title: str | None = None
    timeout_seconds: int | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def secrets(self) -> list[str]:
        return _secrets(self.destination, self.interaction)


def _secrets(destination: Destination | None, interaction: InteractionRef | None) -> list[str]:
    found: list[str] = []
    if destination is not None and destination.webhook_url:
        found.append(destination.webhook_url)
    if interaction is not None:
        found.append(interaction.token)
    return found


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DestinationInfo(_Answer):
    """A destination as the service shows it: the webhook id, never its token; a result's
    also shows the bot's ``channel_id`` (then ``webhook_id`` may be None)."""

    name: str | None = None
    webhook_id: str | None = None
    thread_id: str | None = None
    channel_id: str | None = None


class BotInfo(_Answer):
    """The tenant's bot as the service shows it: never its token. ``id`` and ``username`` are
    None for a configured bot Discord has not confirmed yet; ``source`` is ``api`` (set with
    ``set_bot``) or ``config`` (set by the operator: ``set_bot`` and ``delete_bot`` are refused)."""

    id: str | None = None
    username: str | None = None
    dm_fallback: bool = False
    source: str


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
    dm_fallback: bool | None = None
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


class RunProgress(_Answer):
    """The latest progress of a run (only the latest is kept)."""

    stage: str
    current: int | None = None
    total: int | None = None
    note: str | None = None
    updated_at: datetime


class ProgressMessage(_Answer):
    """The Discord message that shows a run's progress: the deferred response while the
    interaction's token lives, a channel message after the hand-off."""

    route: Route
    message_id: str


class Run(_Answer):
    """A run as the service shows it (``GET /v1/runs/{workflow_id}``)."""

    workflow_id: str
    status: RunStatus
    title: str | None = None
    url: str | None = None
    depth: str | None = None
    progress: RunProgress | None = None
    created_at: datetime
    updated_at: datetime
    token_expires_at: datetime | None = None
    handoff_at: datetime | None = None
    progress_message: ProgressMessage | None = None
    timeout_seconds: int
    result_status: Status | None = None
    error: RunFailure | None = None
    requester: Requester | None = None  # who may see it, as for a result


class RunPage(_Answer):
    items: list[Run]
    next_cursor: str | None = None
