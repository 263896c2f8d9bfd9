"""The service's domain values: what a result is, where it goes, and what happened to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "pending"  # queued, in flight, or waiting to retry
    DELIVERED = "delivered"
    ORPHANED = "orphaned"  # kept for retrieval; ``orphan_reason`` says why


class Route(StrEnum):
    WEBHOOK = "webhook"
    INTERACTION = "interaction"
    CHANNEL = "channel"  # Create Message in a channel with the tenant's bot token
    DM = "dm"  # Create DM with the requester, then Create Message there


@dataclass(frozen=True, slots=True)
class Destination:
    """A channel webhook (with an optional thread); the token is a secret, never shown."""

    webhook_id: str
    webhook_token: str = field(repr=False)
    thread_id: str | None = None
    name: str | None = None

    @property
    def lane(self) -> str:
        return f"{self.webhook_id}:{self.thread_id}" if self.thread_id else self.webhook_id


@dataclass(frozen=True, slots=True)
class Interaction:
    application_id: str
    interaction_id: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewResult:
    """A validated submission, ready to be accepted."""

    tenant: str
    workflow_id: str
    body_hash: str
    results: dict[str, Any]
    url: str | None = None
    depth: str | None = None
    message: dict[str, Any] | None = None
    destination: Destination | None = None
    interaction: Interaction | None = None
    requester: Requester | None = None
    error: tuple[str, str] | None = None  # a failed run's (stage, message)
    # The results as the store keeps them (jsonpieces.storable_json), when the API encoded them
    # already: off the event loop for a large body, where the size is known. Else the store does.
    results_json: str | None = field(default=None, repr=False)
    # The channel the tenant's bot posts in (``destination.channel_id``): the result's only
    # target, or the bot's fallback after the webhook.
    channel_id: str | None = None
    dm_fallback: bool | None = None  # None: the tenant's default (off unless the bot says so)

    @property
    def lane(self) -> str:
        """Which lane delivers it: its channel webhook, else its interaction, else its bot
        channel."""
        return result_lane(self.destination, self.interaction, self.channel_id)


def result_lane(
    destination: Destination | None, interaction: Interaction | None, channel_id: str | None
) -> str:
    """The lane of a result: the first route its delivery tries decides which sends are
    ordered and rate limited together."""
    if destination is not None:
        return destination.lane
    if interaction is not None:
        return f"interaction:{interaction.interaction_id}"
    assert channel_id is not None, "a result goes somewhere"
    return f"channel:{channel_id}"


@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    part: int
    message_id: str
    route: Route
    delivered_at: float


@dataclass(frozen=True, slots=True)
class InFlight:
    """A part handed to Discord whose outcome is not recorded yet: after a crash it may or may
    not have arrived, and whoever takes the lane over knows to look before sending it again."""

    part: int
    route: Route
    since: float


@dataclass(frozen=True, slots=True)
class ResultRecord:
    tenant: str
    workflow_id: str
    status: Status
    results: dict[str, Any]
    url: str | None
    depth: str | None
    message: dict[str, Any] | None
    destination: Destination | None
    interaction: Interaction | None
    requester: Requester | None
    lane: str
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    delivered_at: float | None
    attempts: int
    last_error: str | None
    orphan_reason: str | None
    messages: tuple[DeliveredMessage, ...]
    body_hash: str = field(repr=False)
    in_flight: InFlight | None = None  # last: it has a default, body_hash has none
    # Every attempt in the history; ``attempts`` counts only those that use up the retry budget
    # since the last (re)delivery.
    attempts_made: int = 0
    error: tuple[str, str] | None = None  # a failed run's (stage, message): rendered as an error
    channel_id: str | None = None  # as in NewResult
    dm_fallback: bool | None = None  # as in NewResult
    # How many times the result was queued again (redeliver): each round posts anew, so a bot
    # message's nonce names its round.
    delivery_round: int = 0


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    record: ResultRecord
    created: bool
    run_finished: bool = False  # the result finished the run of its workflow id


class AttemptOutcome(StrEnum):
    """What became of one attempt: one value per decision of ``service.delivery.decide``."""

    DELIVERED = "delivered"  # Discord took the part
    RATE_LIMITED = "rate_limited"  # 429: sent again once the bucket allows; uses up no attempt
    FALLBACK = "fallback"  # the interaction was refused: the next route takes over at once
    DEAD_WEBHOOK = "dead_webhook"  # the webhook is gone for this token: its results are orphaned
    REFUSED = "refused"  # Discord will never take this payload: the result is orphaned
    RETRY = "retry"  # a transient failure: tried again later
    AMBIGUOUS = "ambiguous"  # no answer (or a crash) after sending: it may have been posted
    GAVE_UP = "gave_up"  # a failure with no attempt or time left: the result is orphaned
    RECONCILED = "reconciled"  # an unanswered part was found posted in the channel: not resent


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to Discord on behalf of one result."""

    at: float
    route: Route
    outcome: AttemptOutcome
    duration_ms: float
    part: int = 0
    http_status: int | None = None
    discord_code: int | None = None
    error: str | None = None
    counts: bool = True  # False for 429s and interaction fallbacks: they use up no attempt


BOT_SOURCE_API = "api"  # set with PUT /v1/bot
BOT_SOURCE_CONFIG = "config"  # set by RELAY_BOT_TOKENS


@dataclass(frozen=True, slots=True)
class BotConfig:
    """A tenant's Discord bot: the token (a secret, never shown) and what Discord said of it."""

    tenant: str
    bot_id: str
    username: str
    token: str = field(repr=False)
    dm_fallback: bool = False  # the tenant's default for results that do not say
    source: str = BOT_SOURCE_API  # BOT_SOURCE_API or BOT_SOURCE_CONFIG


@dataclass(frozen=True, slots=True)
class ResultFilter:
    status: Status | None = None
    url: str | None = None
    requester_id: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None  # in the workflow id or the URL, ASCII letters in either case


@dataclass(frozen=True, slots=True)
class AttemptCount:
    """How many attempts of one outcome fell in one time slot (see :class:`TenantOverview`)."""

    slot: int
    outcome: AttemptOutcome
    count: int


@dataclass(frozen=True, slots=True)
class TenantOverview:
    """A tenant's results at a glance, and the fleet they are delivered by.

    ``attempts`` covers ``since`` to ``now`` (both included) in slots of equal length, slot 0
    starting at ``since``.
    """

    counts: dict[Status, int]
    oldest_pending_at: float | None
    attempts: tuple[AttemptCount, ...]
    replicas: int  # replicas heartbeating now, fleet-wide
    paused_until: float  # the fleet-wide pause; in the past (or 0.0) when there is none


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ResultRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant: str
    label: str | None
    created_at: float
    revoked_at: float | None


# -- runs: the whole conversation of a long run ---------------------------------------------------


class RunStatus(StrEnum):
    RUNNING = "running"  # progress goes to the interaction's deferred response (or the channel)
    HANDED_OFF = "handed_off"  # the notice is out; progress lives in one channel message
    FINISHED = "finished"  # its result arrived
    FAILED = "failed"  # its result arrived with an error
    ABANDONED = "abandoned"  # no progress and no result for ``timeout_seconds``

    @property
    def live(self) -> bool:
        return self in (RunStatus.RUNNING, RunStatus.HANDED_OFF)


@dataclass(frozen=True, slots=True)
class Progress:
    """The latest progress of a run: only the latest is kept."""

    stage: str
    current: int | None = None
    total: int | None = None
    note: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class NewRun:
    """A validated ``POST /v1/runs``, ready to be started."""

    tenant: str
    workflow_id: str
    body_hash: str
    timeout_seconds: int
    handoff_at: float | None  # None without an interaction
    title: str | None = None
    url: str | None = None
    depth: str | None = None
    destination: Destination | None = None
    interaction: Interaction | None = None
    requester: Requester | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    tenant: str
    workflow_id: str
    status: RunStatus
    title: str | None
    url: str | None
    depth: str | None
    destination: Destination | None
    interaction: Interaction | None
    requester: Requester | None
    timeout_seconds: int
    created_at: float
    updated_at: float
    last_activity_at: float
    handoff_at: float | None
    progress: Progress | None
    progress_version: int  # how many progress updates arrived
    shown_version: int  # the version the progress message shows
    progress_route: Route | None  # where the progress message is: @original or the channel
    progress_message_id: str | None
    next_edit_at: float | None  # no edit of the progress message before this
    final_shown: bool  # the progress message shows the run's final state
    abandon_notified: bool
    channel_dead: str | None  # why the channel webhook may no longer be used
    coalesced: int  # progress updates that were never shown
    failures: int  # requests failed in a row (5xx, timeouts): the backoff's exponent
    due_at: float | None
    error_stage: str | None
    error_message: str | None
    result_status: Status | None
    body_hash: str = field(repr=False)

    @property
    def lane(self) -> str | None:
        return self.destination.lane if self.destination is not None else None


@dataclass(frozen=True, slots=True)
class RunStart:
    record: RunRecord
    created: bool


@dataclass(frozen=True, slots=True)
class RunStep:
    """What the run engine did with a claimed run: written back in one commit, which also
    releases its lease. ``seen_*`` are the run as claimed: progress or a result that arrived
    meanwhile make it due again at once instead of being overwritten."""

    tenant: str
    workflow_id: str
    seen_version: int
    seen_status: RunStatus
    status: RunStatus
    shown_version: int
    progress_route: Route | None
    progress_message_id: str | None
    next_edit_at: float | None
    final_shown: bool
    abandon_notified: bool
    channel_dead: str | None
    coalesced: int  # added to the run's count
    failures: int
    due_at: float | None


@dataclass(frozen=True, slots=True)
class RunFilter:
    status: RunStatus | None = None
    url: str | None = None
    requester_id: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None  # in the workflow id or the URL, ASCII letters in either case


@dataclass(frozen=True, slots=True)
class RunPage:
    items: tuple[RunRecord, ...]
    next_cursor: str | None
