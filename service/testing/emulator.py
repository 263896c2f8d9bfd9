"""`DiscordEmulator`: the object tests hold. It owns the state, exposes the ASGI app in `.app`,
and offers the control methods that the `/_emulator` HTTP API mirrors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp

from service.testing.app import build_app
from service.testing.bot_routes import BotRoutes
from service.testing.control import control_routes
from service.testing.counters import CounterBook
from service.testing.faults import Fault, FaultKind, FaultQueue
from service.testing.gate import Gate
from service.testing.models import (
    ChannelAccess,
    EmulatedBot,
    EmulatedChannel,
    EmulatedInteraction,
    EmulatedUser,
    EmulatedWebhook,
    EmulatorCounters,
    ReceivedEdit,
    ReceivedMessage,
)
from service.testing.ratelimit import (
    DEFAULT_BOT_GLOBAL,
    DEFAULT_BOT_ROUTE,
    DEFAULT_DM_OPEN,
    Limit,
    RateLimiter,
)
from service.testing.routes import DiscordRoutes
from service.testing.schema import MessageSchemas, load_schemas
from service.testing.state import EmulatorState

MiB = 1024 * 1024
FILE_SIZE_LIMIT = 10 * MiB
INVALID_REQUEST_LIMIT = 10_000


class DiscordEmulator:
    """An in-memory Discord webhook and bot API, strict about everything a client can get wrong.

    `clock` drives all rate-limit math (a test's fake clock makes waiting free); `wall_clock`
    stamps snowflakes, `X-RateLimit-Reset` and interaction expiry.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        spec_path: str | Path | None = None,
        webhook_limit: Limit = (5, 2.0),
        channel_limit: Limit = (30, 60.0),
        global_limit: Limit = (50, 1.0),
        bot_route_limit: Limit = DEFAULT_BOT_ROUTE,
        bot_global_limit: Limit = DEFAULT_BOT_GLOBAL,
        dm_open_limit: Limit = DEFAULT_DM_OPEN,
        file_size_limit: int = FILE_SIZE_LIMIT,
        invalid_request_limit: int = INVALID_REQUEST_LIMIT,
    ) -> None:
        self._wall_clock = wall_clock
        self._spec_path = spec_path
        self._state = EmulatorState(wall_clock)
        self._limiter = RateLimiter(
            clock,
            wall_clock,
            webhook=webhook_limit,
            channel=channel_limit,
            global_=global_limit,
            bot_route=bot_route_limit,
            bot_global=bot_global_limit,
            dm_open=dm_open_limit,
        )
        self._faults = FaultQueue()
        self._counters = CounterBook(clock, invalid_request_limit=invalid_request_limit)
        gate = Gate(
            state=self._state,
            limiter=self._limiter,
            faults=self._faults,
            counters=self._counters,
            wall_clock=wall_clock,
        )
        discord = DiscordRoutes(
            gate=gate,
            state=self._state,
            limiter=self._limiter,
            counters=self._counters,
            schemas=self.load_schema,
            file_limit=file_size_limit,
        )
        bots = BotRoutes(
            gate=gate,
            state=self._state,
            limiter=self._limiter,
            counters=self._counters,
            messages=discord,
        )
        self.app: ASGIApp = build_app(discord, bots, control_routes(self), self._counters)

    def load_schema(self) -> MessageSchemas | None:
        """The compiled OpenAPI validators (None without a spec). Call early to warm up."""
        return load_schemas(self._spec_path)

    # -- webhooks and threads ----------------------------------------------------------------

    def create_webhook(
        self,
        *,
        channel_id: str | None = None,
        guild_id: str | None = None,
        forum: bool = False,
        name: str = "relay-test",
    ) -> EmulatedWebhook:
        return self._state.create_webhook(
            channel_id=channel_id, guild_id=guild_id, forum=forum, name=name
        )

    def create_thread(self, webhook_id: str) -> str:
        """A thread in the webhook's channel, usable as `?thread_id=`."""
        return self._state.create_thread(webhook_id)

    def delete_webhook(self, webhook_id: str) -> None:
        """From now on every call to the webhook answers 404 / 10015."""
        self._state.delete_webhook(webhook_id)

    # -- bots, channels, users ---------------------------------------------------------------

    def create_bot(self, *, username: str = "relay-bot") -> EmulatedBot:
        """A bot user; its token authenticates `Authorization: Bot <token>`."""
        return self._state.create_bot(username=username)

    def create_channel(
        self, *, guild_id: str | None = None, channel_id: str | None = None
    ) -> EmulatedChannel:
        """A guild text channel every bot may view, post to and read (see `set_access`)."""
        return self._state.create_channel(guild_id=guild_id, channel_id=channel_id)

    def set_access(
        self,
        channel_id: str,
        bot_id: str,
        *,
        view: bool = True,
        send: bool = True,
        read_history: bool = True,
    ) -> None:
        """What the bot may do in the channel (and its threads): without `view` Discord answers
        403 / 50001, without `send` 403 / 50013; without `read_history` Get Channel Messages
        answers an empty list, as Discord documents."""
        self._state.set_access(channel_id, bot_id, ChannelAccess(view, send, read_history))

    def create_user(self, *, dms_open: bool = True) -> EmulatedUser:
        """A user bots may open DMs with; with DMs closed, posting there answers 403 / 50007."""
        return self._state.create_user(dms_open=dms_open)

    def set_dms_open(self, user_id: str, dms_open: bool) -> EmulatedUser:
        return self._state.set_dms_open(user_id, dms_open)

    # -- interactions ------------------------------------------------------------------------

    def create_interaction(
        self,
        *,
        application_id: str | None = None,
        age_seconds: float = 0.0,
        channel_id: str | None = None,
    ) -> EmulatedInteraction:
        """A deferred interaction created `age_seconds` ago; its token lasts 15 minutes."""
        return self._state.create_interaction(
            application_id=application_id, age_seconds=age_seconds, channel_id=channel_id
        )

    # -- limits and faults -------------------------------------------------------------------

    def set_limits(
        self,
        *,
        webhook: Limit | None = None,
        channel: Limit | None = None,
        global_: Limit | None = None,
        bot_route: Limit | None = None,
        bot_global: Limit | None = None,
        dm_open: Limit | None = None,
    ) -> None:
        """Replaces the given limits (count, per seconds); all windows restart. `bot_route` is
        every bot route's bucket per (bot, route, channel), `bot_global` each bot's own global
        limit, `dm_open` how many new DMs a bot may open per period (then 400 / 40003)."""
        self._limiter.set_limits(
            {
                "webhook": webhook,
                "channel": channel,
                "global": global_,
                "bot_route": bot_route,
                "bot_global": bot_global,
                "dm_open": dm_open,
            }
        )

    @property
    def limits(self) -> dict[str, Limit]:
        return self._limiter.limits

    def inject_fault(
        self,
        kind: FaultKind | str,
        *,
        webhook_id: str | None = None,
        count: int = 1,
        seconds: float | None = None,
        channel_id: str | None = None,
    ) -> Fault:
        """Queues a failure for the next `count` requests to `webhook_id` and / or in
        `channel_id` (None: any). A bot's requests are in the channel of their path (Get
        Current User and Create DM in none); a webhook's in its channel.

        `"30046"` waits for message edits only (other requests pass it by) and refuses them as
        Discord does for messages older than an hour; for an interaction's messages,
        `webhook_id` is its application id."""
        return self._faults.add(
            kind, webhook_id=webhook_id, count=count, seconds=seconds, channel_id=channel_id
        )

    def pending_faults(self) -> list[Fault]:
        return self._faults.pending()

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- what Discord received ---------------------------------------------------------------

    def messages(
        self, webhook_id: str, thread_id: str | None = None, *, include_deleted: bool = False
    ) -> list[ReceivedMessage]:
        """Messages the webhook posted, in arrival order; `thread_id` narrows to one thread."""
        return self._state.messages(
            webhook_id, thread_id=thread_id, include_deleted=include_deleted
        )

    def followups(
        self, interaction_id: str, *, include_deleted: bool = False
    ) -> list[ReceivedMessage]:
        """Follow-up messages sent with the interaction's token, in arrival order."""
        return self._state.messages(interaction_id, include_deleted=include_deleted)

    def original(self, interaction_id: str) -> ReceivedMessage:
        """The interaction's original (deferred) response, after any `@original` edits."""
        return self._state.original(interaction_id)

    def channel_messages(
        self, channel_id: str, *, include_deleted: bool = False
    ) -> list[ReceivedMessage]:
        """Every message posted to the channel (a thread is a channel of its own), by
        webhooks, interactions and bots, oldest first."""
        stored = self._state.history(channel_id, include_deleted=include_deleted)
        return [s.message for s in stored]

    def dm_messages(self, user_id: str) -> list[ReceivedMessage]:
        """Messages bots posted in their DMs with the user, oldest first."""
        return [s.message for s in self._state.dm_history(user_id)]

    def edits(self, message_id: str) -> list[ReceivedEdit]:
        """The edits applied to a webhook message, follow-up, `@original` or bot message, in
        order."""
        return self._state.edits(message_id)

    # -- counters ----------------------------------------------------------------------------

    @property
    def counters(self) -> EmulatorCounters:
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()
