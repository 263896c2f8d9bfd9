"""Request and response bodies of the HTTP API (the ``ResultCreate`` / ``ResultPublic`` family).

Validators raise ``PydanticCustomError`` with the service's own error codes, so a 422 names the
rule that failed (see ``service.api.errors``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.api.faithful import unfaithful
from service.discord.bot_sender import BOT_TOKEN_PATTERN
from service.discord.snowflake import SNOWFLAKE_PATTERN, interaction_expires_at, is_snowflake
from service.discord.webhook_url import WEBHOOK_URL_PATTERN, WebhookUrlError, parse_webhook_url
from service.domain import (
    BOT_SOURCE_CONFIG,
    AttemptOutcome,
    BotConfig,
    DeliveredMessage,
    Destination,
    Requester,
    ResultRecord,
    Route,
    RunRecord,
    RunStatus,
    Status,
)

# At least one letter or digit: ".", ".." or "---" name nothing, and a file named after one
# (results-..json) or a path holding one would be a trap. Without look-ahead (the schema's
# regex engines differ on it) the length bound is max_length, beside the pattern.
WORKFLOW_ID_PATTERN = r"^[_.:-]*[A-Za-z0-9][A-Za-z0-9_.:-]*$"
WORKFLOW_ID_MAX_LENGTH = 128
DESTINATION_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _snowflake(value: str) -> str:
    if not is_snowflake(value):
        raise PydanticCustomError(
            "invalid_snowflake", "must be a Discord snowflake: 17-20 digits, below 2^64"
        )
    return value


def _webhook_url(value: str) -> str:
    try:
        parse_webhook_url(value)
    except WebhookUrlError as exc:
        raise PydanticCustomError("invalid_webhook_url", str(exc)) from None
    return value


def _storable(value: str) -> str:
    # Databases refuse NUL in text columns (unpaired surrogates are caught for the whole body).
    if "\x00" in value:
        raise PydanticCustomError("unstorable_text", "must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_storable)]
Snowflake = Annotated[
    str,
    Field(json_schema_extra={"pattern": SNOWFLAKE_PATTERN}, examples=["175928847299117063"]),
    AfterValidator(_snowflake),
]
WebhookUrl = Annotated[
    str,
    Field(max_length=512, json_schema_extra={"pattern": WEBHOOK_URL_PATTERN}),
    AfterValidator(_webhook_url),
]
WorkflowId = Annotated[
    str, Field(min_length=1, max_length=WORKFLOW_ID_MAX_LENGTH, pattern=WORKFLOW_ID_PATTERN)
]
DestinationName = Annotated[str, Field(pattern=DESTINATION_NAME_PATTERN)]
# A listing's ``q``: wildcards are literal (the store escapes them), NUL is refused up front.
SearchText = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=100,
        description="Part of the workflow id or the URL, ASCII letters in either case; "
        "% and _ are literal",
    ),
]


def _input_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Optional input fields may be left out, not sent as null: say so, and add model rules."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            options.remove({"type": "null"})
            if len(options) == 1:
                prop.update(options.pop())
                del prop["anyOf"]
            if prop.get("default", ...) is None:
                del prop["default"]
    schema.update(getattr(model, "schema_rules", {}))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_input_schema)


class _Body(_Strict):
    """A request body as a whole: before any field is looked at, the parsed value must be one
    every store keeps exactly (``service.api.faithful``), whichever JSON parser produced it."""

    @model_validator(mode="before")
    @classmethod
    def _faithful(cls, data: Any) -> Any:
        found = unfaithful(data)
        if found is not None:
            # The path travels in the context: the error's own location is the whole body.
            raise PydanticCustomError(found.code, found.message, {"field": found.field()})
        return data


class DestinationIn(_Strict):
    schema_rules: ClassVar = {
        "anyOf": [
            {"required": ["webhook_url"]},
            {"required": ["name"]},
            {"required": ["channel_id"]},
        ],
        "not": {"required": ["webhook_url", "name"]},
    }

    webhook_url: WebhookUrl | None = Field(
        default=None, description="A channel webhook URL copied from Discord."
    )
    name: DestinationName | None = Field(
        default=None, description="A destination registered with PUT /v1/destinations/{name}."
    )
    thread_id: Snowflake | None = Field(
        default=None, description="Post into this thread (with webhook_url or name)."
    )
    channel_id: Snowflake | None = Field(
        default=None,
        description="A channel the tenant's bot (PUT /v1/bot) posts in: alone, or beside "
        "webhook_url or name as the bot's fallback when the webhook cannot be used.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.webhook_url is not None and self.name is not None:
            raise PydanticCustomError(
                "invalid_destination", "destination takes webhook_url or name, not both"
            )
        if self.webhook_url is None and self.name is None:
            if self.channel_id is None:
                raise PydanticCustomError(
                    "invalid_destination",
                    "destination needs webhook_url, name or channel_id",
                )
            if self.thread_id is not None:
                raise PydanticCustomError(
                    "invalid_destination",
                    "thread_id goes with webhook_url or name; for the bot, give the thread's "
                    "id as channel_id",
                )
        return self


def _webhook_only(destination: DestinationIn | None, what: str) -> None:
    """Runs and redelivery take channel webhooks only, until they learn the bot's routes."""
    if destination is not None and destination.channel_id is not None:
        raise PydanticCustomError(
            "unsupported_destination",
            f"{what} take a channel webhook (webhook_url or name), not channel_id",
        )


class InteractionIn(_Strict):
    application_id: Snowflake
    interaction_id: Snowflake
    token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{20,1000}$")]


class RequesterIn(_Strict):
    user_id: Snowflake | None = Field(
        default=None, description="Who asked; mentioned in the channel message."
    )
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None


class MessageIn(_Strict):
    """A bot-supplied message; the service splits it to fit Discord's limits."""

    content: str | None = None
    embeds: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class RunError(_Strict):
    """Why a run failed: rendered as an error (the stage and the message, never a traceback)."""

    stage: Annotated[Text, Field(min_length=1, max_length=100)]
    message: Annotated[Text, Field(min_length=1, max_length=2000)]


class ResultCreate(_Body):
    # Where it goes may come from the run of the same workflow id; without one, a destination or
    # an interaction is required (checked when the submission is accepted).
    schema_rules: ClassVar = {
        "required": ["workflow_id"],
        "anyOf": [{"required": ["results"]}, {"required": ["error"]}],
    }

    workflow_id: WorkflowId
    results: dict[str, Any] = Field(
        description="The finished result: any JSON object. Optional with `error` (then `{}`)."
    )
    url: Annotated[Text, Field(max_length=2048)] | None = None
    depth: Annotated[Text, Field(max_length=64)] | None = None
    message: MessageIn | None = None
    destination: DestinationIn | None = None
    interaction: InteractionIn | None = None
    requester: RequesterIn | None = None
    error: RunError | None = Field(
        default=None, description="The run failed: delivered as an error rendering."
    )
    dm_fallback: bool | None = Field(
        default=None,
        description="Whether the bot may send it to the requester in a DM when no channel "
        "takes it; left out: the tenant's default (PUT /v1/bot).",
    )

    @model_validator(mode="before")
    @classmethod
    def _results_of_a_failure(cls, data: Any) -> Any:
        if isinstance(data, dict) and "results" not in data and data.get("error") is not None:
            return {**data, "results": {}}
        return data


class RunCreate(_Body):
    schema_rules: ClassVar = {
        "anyOf": [{"required": ["destination"]}, {"required": ["interaction"]}]
    }

    workflow_id: WorkflowId
    interaction: InteractionIn | None = Field(
        default=None, description="The deferred interaction: progress shows on its response."
    )
    destination: DestinationIn | None = Field(
        default=None, description="The channel webhook progress moves to after the hand-off."
    )
    requester: RequesterIn | None = None
    url: Annotated[Text, Field(max_length=2048)] | None = None
    depth: Annotated[Text, Field(max_length=64)] | None = None
    title: Annotated[Text, Field(max_length=256)] | None = None
    timeout_seconds: Annotated[int, Field(ge=60, le=86400)] | None = Field(
        default=None,
        description="Abandon the run after this long without progress or result "
        "(default RELAY_RUN_TIMEOUT_SECONDS).",
    )

    @model_validator(mode="after")
    def _somewhere_to_go(self) -> Self:
        if self.destination is None and self.interaction is None:
            raise PydanticCustomError(
                "missing_destination", "give a destination (webhook_url or name) or an interaction"
            )
        _webhook_only(self.destination, "runs")
        return self


class ProgressIn(_Body):
    stage: Annotated[Text, Field(min_length=1, max_length=100)]
    current: Annotated[int, Field(ge=0)] | None = None
    total: Annotated[int, Field(ge=1)] | None = None
    note: Annotated[Text, Field(max_length=500)] | None = None

    @model_validator(mode="after")
    def _current_within_total(self) -> Self:
        if self.current is not None and self.total is not None and self.current > self.total:
            raise PydanticCustomError("invalid_progress", "current must not exceed total")
        return self


class RedeliverRequest(_Body):
    destination: DestinationIn | None = Field(
        default=None,
        description="Deliver here instead of the result's own webhook (the result keeps its "
        "channel_id).",
    )

    @model_validator(mode="after")
    def _to_a_webhook(self) -> Self:
        _webhook_only(self.destination, "redeliveries")
        return self


class DestinationCreate(_Body):
    webhook_url: WebhookUrl = Field(description="A channel webhook URL copied from Discord.")
    thread_id: Snowflake | None = Field(default=None, description="Post into this thread.")


class BotCreate(_Body):
    token: Annotated[str, Field(json_schema_extra={"pattern": BOT_TOKEN_PATTERN})] = Field(
        description="The bot's token (Discord developer portal, Bot, Reset Token). Stored "
        "encrypted, never shown again."
    )
    dm_fallback: bool = Field(
        default=False,
        description="The default for results that do not say: may the bot send a result to "
        "the requester in a DM when no channel takes it.",
    )

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        # Not a pattern constraint: pydantic's own message for one quotes the pattern, and
        # the check is the service's rule with its own code.
        if not re.fullmatch(BOT_TOKEN_PATTERN, value):
            raise PydanticCustomError(
                "invalid_bot_token",
                "is not a bot token: 50 to 200 letters, digits, '.', '_' or '-'",
            )
        return value


# -- responses ---------------------------------------------------------------------------------


class BotPublic(BaseModel):
    id: str | None = Field(description="The bot's user id; null until Discord confirmed it.")
    username: str | None = Field(description="The bot's name; null until Discord confirmed it.")
    dm_fallback: bool
    source: Literal["api", "config"] = Field(
        description="api: set with PUT /v1/bot; config: set by RELAY_BOT_TOKENS (the API does "
        "not change it)."
    )


class DestinationPublic(BaseModel):
    name: str | None
    webhook_id: str
    thread_id: str | None


class DestinationsPublic(BaseModel):
    items: list[DestinationPublic]


class ResultDestinationPublic(BaseModel):
    name: str | None
    webhook_id: str | None
    thread_id: str | None
    channel_id: str | None = Field(description="The channel the tenant's bot posts in.")


class InteractionPublic(BaseModel):
    application_id: str
    interaction_id: str
    expires_at: datetime


class RequesterPublic(BaseModel):
    user_id: str | None
    guild_id: str | None
    channel_id: str | None


class MessagePublic(BaseModel):
    part: int
    message_id: str
    route: Route
    delivered_at: datetime


class RetrievalInfo(BaseModel):
    command: str
    reason: str | None


class ResultSummary(BaseModel):
    workflow_id: str
    status: Status
    url: str | None
    depth: str | None
    destination: ResultDestinationPublic | None
    dm_fallback: bool | None = Field(description="Null: the tenant's default.")
    interaction: InteractionPublic | None
    requester: RequesterPublic | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    attempts: int = Field(
        description="Every delivery attempt made, as listed by /attempts: deliveries, 429s, "
        "fallbacks and failures alike."
    )
    counted_attempts: int = Field(
        description="The attempts that used up the retry budget (RELAY_MAX_ATTEMPTS) since the "
        "result was last (re)queued."
    )
    last_error: str | None
    messages: list[MessagePublic]
    retrieval_info: RetrievalInfo


class ResultPublic(ResultSummary):
    results: dict[str, Any]
    message: dict[str, Any] | None


class ResultsPublic(BaseModel):
    items: list[ResultSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class ProgressPublic(BaseModel):
    stage: str
    current: int | None
    total: int | None
    note: str | None
    updated_at: datetime


class ProgressMessagePublic(BaseModel):
    route: Route = Field(description="interaction: the deferred response; webhook: the channel.")
    message_id: str | None = Field(description="Null for the deferred response (@original).")


class RunErrorPublic(BaseModel):
    stage: str
    message: str


class RunPublic(BaseModel):
    workflow_id: str
    status: RunStatus
    title: str | None
    url: str | None
    depth: str | None
    progress: ProgressPublic | None
    created_at: datetime
    updated_at: datetime
    token_expires_at: datetime | None = Field(description="Null without an interaction.")
    handoff_at: datetime | None = Field(
        description="When progress moves (moved) to the channel; null without an interaction."
    )
    progress_message: ProgressMessagePublic | None
    timeout_seconds: int
    result_status: Status | None = Field(description="The status of the run's result, if any.")
    error: RunErrorPublic | None
    requester: RequesterPublic | None = Field(
        description="Who asked for the run: who may see it, as for its result."
    )


class RunsPublic(BaseModel):
    items: list[RunPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class AttemptPublic(BaseModel):
    at: datetime
    part: int
    route: Route
    outcome: AttemptOutcome = Field(
        description="delivered; rate_limited (429, sent again); fallback (this route was "
        "refused for good: an expired interaction, or a target that is not reachable such as "
        "missing access or closed DMs; the next route took over); dead_webhook (the webhook is "
        "gone for this token); refused (Discord will not take the payload, or the bot token); "
        "retry (a transient failure); ambiguous (sent without an answer, or cut short by a "
        "crash: it may have been posted); gave_up (a failure with no attempt or time left); "
        "reconciled (an unanswered webhook part was found posted in the channel by the bot, "
        "and not sent again)."
    )
    http_status: int | None
    discord_code: int | None
    duration_ms: float
    error: str | None
    counted: bool = Field(
        description="Whether it used up one of the result's attempts: false for deliveries, "
        "429s and interaction fallbacks."
    )


class AttemptsPublic(BaseModel):
    items: list[AttemptPublic]


class ErrorDetail(BaseModel):
    field: str
    code: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


# -- record -> response -----------------------------------------------------------------------


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _maybe_utc(timestamp: float | None) -> datetime | None:
    return utc(timestamp) if timestamp is not None else None


def _requester(req: Requester | None) -> RequesterPublic | None:
    if req is None:
        return None
    return RequesterPublic(user_id=req.user_id, guild_id=req.guild_id, channel_id=req.channel_id)


def _summary_fields(record: ResultRecord) -> dict[str, Any]:
    dest, inter, req = record.destination, record.interaction, record.requester
    return {
        "workflow_id": record.workflow_id,
        "status": record.status,
        "url": record.url,
        "depth": record.depth,
        "destination": _destination_public(dest, record.channel_id),
        "dm_fallback": record.dm_fallback,
        "interaction": InteractionPublic(
            application_id=inter.application_id,
            interaction_id=inter.interaction_id,
            expires_at=utc(interaction_expires_at(inter.interaction_id)),
        )
        if inter
        else None,
        "requester": _requester(req),
        "created_at": utc(record.created_at),
        "updated_at": utc(record.updated_at),
        "delivered_at": _maybe_utc(record.delivered_at),
        "next_attempt_at": _maybe_utc(record.next_attempt_at),
        "attempts": record.attempts_made,
        "counted_attempts": record.attempts,
        "last_error": record.last_error,
        "messages": [_message(m) for m in record.messages],
        "retrieval_info": RetrievalInfo(
            command=f"/retrieve_results workflow_id:{record.workflow_id}",
            reason=record.orphan_reason,
        ),
    }


def _destination_public(
    destination: Destination | None, channel_id: str | None
) -> ResultDestinationPublic | None:
    if destination is None and channel_id is None:
        return None
    return ResultDestinationPublic(
        name=destination.name if destination else None,
        webhook_id=destination.webhook_id if destination else None,
        thread_id=destination.thread_id if destination else None,
        channel_id=channel_id,
    )


def bot_public(bot: BotConfig) -> BotPublic:
    return BotPublic(
        id=bot.bot_id or None,
        username=bot.username or None,
        dm_fallback=bot.dm_fallback,
        source="config" if bot.source == BOT_SOURCE_CONFIG else "api",
    )


def _message(message: DeliveredMessage) -> MessagePublic:
    return MessagePublic(
        part=message.part,
        message_id=message.message_id,
        route=message.route,
        delivered_at=utc(message.delivered_at),
    )


def summary_from_record(record: ResultRecord) -> ResultSummary:
    return ResultSummary(**_summary_fields(record))


def public_from_record(record: ResultRecord) -> ResultPublic:
    return ResultPublic(**_summary_fields(record), results=record.results, message=record.message)


def run_public(run: RunRecord) -> RunPublic:
    progress = run.progress
    message = None
    if run.progress_route is not None:
        message = ProgressMessagePublic(
            route=run.progress_route, message_id=run.progress_message_id
        )
    return RunPublic(
        workflow_id=run.workflow_id,
        status=run.status,
        title=run.title,
        url=run.url,
        depth=run.depth,
        progress=ProgressPublic(
            stage=progress.stage,
            current=progress.current,
            total=progress.total,
            note=progress.note,
            updated_at=utc(progress.updated_at),
        )
        if progress is not None
        else None,
        created_at=utc(run.created_at),
        updated_at=utc(run.updated_at),
        token_expires_at=utc(interaction_expires_at(run.interaction.interaction_id))
        if run.interaction is not None
        else None,
        handoff_at=_maybe_utc(run.handoff_at),
        progress_message=message,
        timeout_seconds=run.timeout_seconds,
        result_status=run.result_status,
        requester=_requester(run.requester),
        error=RunErrorPublic(stage=run.error_stage, message=run.error_message or "")
        if run.error_stage is not None
        else None,
    )
