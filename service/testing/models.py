"""Public value types of the Discord emulator, and its snowflake factory.

Everything a test reads back from the emulator is one of these frozen dataclasses: snapshots,
so a later edit on the emulator never changes a value a test already holds.
"""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from service.discord.snowflake import (
    DISCORD_EPOCH_MS,
)

# Flags a webhook message may carry (REFERENCE.md): SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS,
# IS_COMPONENTS_V2. EPHEMERAL exists only for interaction responses and follow-ups.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_IS_COMPONENTS_V2 = 1 << 15


class SnowflakeFactory:
    """Mints unique snowflakes from a wall clock, like Discord's id workers."""

    def __init__(self, worker_id: int = 1, process_id: int = 0) -> None:
        self._worker = worker_id & 0x1F
        self._process = process_id & 0x1F
        self._increment = itertools.count()
        self._lock = threading.Lock()
        self._last = 0

    def at(self, unix_seconds: float) -> str:
        """A snowflake whose timestamp is `unix_seconds` (strictly increasing when equal times)."""
        ms = max(int(unix_seconds * 1000) - DISCORD_EPOCH_MS, 0)
        with self._lock:
            value = (
                (ms << 22)
                | (self._worker << 17)
                | (self._process << 12)
                | (next(self._increment) & 0xFFF)
            )
            # Keep ids unique and ordered even when the wall clock stands still (fake clocks);
            # a back-dated id (an old interaction) keeps its own time instead.
            if value >> 22 >= self._last >> 22:
                value = max(value, self._last + 1)
                self._last = value
        return str(value)


@dataclass(frozen=True)
class EmulatedWebhook:
    """A channel webhook known to the emulator. `token` is a secret: never log it."""

    id: str
    token: str = field(repr=False)
    channel_id: str
    guild_id: str
    forum: bool = False
    name: str = "relay-test"

    @property
    def url(self) -> str:
        """The URL a user pastes: Discord's UI copies the unversioned form."""
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"


@dataclass(frozen=True)
class EmulatedInteraction:
    """A deferred interaction whose token allows follow-ups until `expires_at` (Unix seconds)."""

    application_id: str
    interaction_id: str
    token: str = field(repr=False)
    channel_id: str
    expires_at: float
    original_message_id: str


@dataclass(frozen=True)
class EmulatedBot:
    """A bot user and its token (`Authorization: Bot <token>`). `token` is a secret."""

    id: str
    token: str = field(repr=False)
    username: str = "relay-bot"


@dataclass(frozen=True)
class EmulatedChannel:
    """A text channel (or a thread: `parent_id` set, or a DM: `recipient_id` set)."""

    id: str
    guild_id: str | None
    parent_id: str | None = None
    recipient_id: str | None = None
    bot_id: str | None = None  # the bot on the other side of a DM


@dataclass(frozen=True)
class EmulatedUser:
    """A Discord user a bot may open a DM with; `dms_open=False` refuses DMs (50007)."""

    id: str
    dms_open: bool = True


@dataclass(frozen=True)
class ChannelAccess:
    """What one bot may do in one channel (Discord's View Channel, Send Messages and Read
    Message History permissions)."""

    view: bool = True
    send: bool = True
    read_history: bool = True


@dataclass(frozen=True)
class ReceivedAttachment:
    """One uploaded file as Discord stored it."""

    id: str
    filename: str
    size: int
    data: bytes = field(repr=False)
    content_type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    """A message as the emulator holds it after every edit; `edits` keeps the PATCH bodies.

    The author is `webhook_id` (a webhook, or an interaction's application) or `bot_id` (a bot
    through Create Message); the other one is None."""

    id: str
    webhook_id: str | None
    channel_id: str
    thread_id: str | None
    content: str | None
    embeds: list[dict[str, Any]]
    attachments: list[ReceivedAttachment]
    allowed_mentions: dict[str, Any] | None
    flags: int
    username: str | None
    avatar_url: str | None
    payload: dict[str, Any]
    received_at: float
    interaction_id: str | None = None
    components: list[Any] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    edited_at: float | None = None
    deleted: bool = False
    bot_id: str | None = None
    nonce: int | str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form for the control API (attachment bytes as base64)."""
        data = asdict(self)
        data["attachments"] = [
            {**a, "data": base64.b64encode(a["data"]).decode("ascii")} for a in data["attachments"]
        ]
        return data


@dataclass(frozen=True)
class ReceivedEdit:
    """One edit Discord applied to a message: the PATCH body as sent and when it arrived
    (the emulator's wall clock, Unix seconds)."""

    message_id: str
    payload: dict[str, Any]
    received_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EmulatorCounters:
    """Misbehaviour and traffic counters. Every one of them should be zero for a good client,
    except `total_requests`, `edits` (message edits applied), `max_concurrent_per_webhook`,
    `rate_limited["shared"]`, `bot_requests` (per bot route), `dms_opened` and
    `nonce_deduplicated` (Create Message calls answered with the message an earlier call with
    the same nonce created). `refusals` counts Discord error answers by code (as a string);
    `unauthorized` counts 401s."""

    total_requests: int = 0
    payload_400s: int = 0
    payload_413s: int = 0
    other_400s: int = 0
    premature_requests: int = 0
    requests_after_404: int = 0
    requests_after_401: int = 0
    bad_allowed_mentions: int = 0
    max_concurrent_per_webhook: int = 0
    invalid_requests_10min: int = 0
    rate_limited: dict[str, int] = field(default_factory=dict)
    bad_user_agent: int = 0
    unversioned_requests: int = 0
    cloudflare_bans: int = 0
    edits: int = 0
    bot_requests: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)
    nonce_deduplicated: int = 0
    dms_opened: int = 0
    unauthorized: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
