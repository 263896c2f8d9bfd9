"""Discord's bot-token routes: Get Current User, Create / Get / Edit Channel Messages, Create DM.

Each handler runs behind `Gate.serve_bot` (faults, the `Authorization: Bot` token, the bot's
global limit, the route bucket) and deals with the target: the channel must exist (10003), be
visible to the bot (50001) and, to post, writable (50013); a DM's recipient must accept DMs
(50007). Message bodies go through the same rules as webhook bodies (`DiscordRoutes.body`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.testing.body import parse_json, read_capped
from service.testing.counters import CounterBook
from service.testing.errors import (
    CANNOT_MESSAGE_USER,
    EDIT_OF_OTHER_AUTHOR,
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    NOT_A_TEXT_CHANNEL,
    OPENING_DMS_TOO_FAST,
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    UNKNOWN_USER,
    DiscordError,
    form_error,
    snowflake_error,
    type_error,
)
from service.testing.gate import BotCall, Gate, is_snowflake
from service.testing.models import EmulatedBot, EmulatedChannel
from service.testing.ratelimit import RateLimiter
from service.testing.render import bot_user_json, dm_channel_json, message_json
from service.testing.routes import DiscordRoutes
from service.testing.state import EmulatorState, StoredMessage
from service.testing.validation import require_something

DEFAULT_PAGE = 50
MAX_PAGE = 100


@dataclass(frozen=True)
class PageQuery:
    """`?after=&before=&limit=` of Get Channel Messages, checked."""

    after: int | None = None
    before: int | None = None
    limit: int = DEFAULT_PAGE


def parse_page_query(query: dict[str, str]) -> PageQuery:
    """The page parameters, or a 400 / 50035 naming the bad one, as Discord answers."""
    bounds: dict[str, int | None] = {}
    for name in ("after", "before"):
        raw = query.get(name)
        if raw is not None and not is_snowflake(raw):
            raise form_error((name,), *snowflake_error(raw), category="path")
        bounds[name] = int(raw) if raw is not None else None
    raw_limit = query.get("limit")
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise form_error(
                ("limit",), *type_error("integer", raw_limit), category="path"
            ) from None
        if limit > MAX_PAGE:
            message = f"int value should be less than or equal to {MAX_PAGE}."
            raise form_error(("limit",), "NUMBER_TYPE_MAX", message, category="path")
        if limit < 1:
            message = "int value should be greater than or equal to 1."
            raise form_error(("limit",), "NUMBER_TYPE_MIN", message, category="path")
    return PageQuery(after=bounds["after"], before=bounds["before"], limit=limit)


def page_ids(ids: list[int], query: PageQuery) -> list[int]:
    """The ids of one page, newest first. With `after`, the `limit` messages right after it
    (Discord pages forward from there); otherwise the newest `limit` before `before`."""
    chosen = sorted(
        i
        for i in ids
        if (query.after is None or i > query.after) and (query.before is None or i < query.before)
    )
    page = chosen[: query.limit] if query.after is not None else chosen[-query.limit :]
    return page[::-1]


class BotRoutes:
    """Route handlers of the bot-token API; `routes()` lists them for one API mount."""

    def __init__(
        self,
        *,
        gate: Gate,
        state: EmulatorState,
        limiter: RateLimiter,
        counters: CounterBook,
        messages: DiscordRoutes,
    ) -> None:
        self._gate = gate
        self._state = state
        self._limiter = limiter
        self._counters = counters
        self._messages = messages

    def routes(self) -> list[Route]:
        return [
            Route("/users/@me", self._me_endpoint, methods=["GET"]),
            Route("/users/@me/channels", self._dm_endpoint, methods=["POST"]),
            Route(
                "/channels/{channel_id}/messages", self._messages_endpoint, methods=["GET", "POST"]
            ),
            Route(
                "/channels/{channel_id}/messages/{message_id}",
                self._message_endpoint,
                methods=["PATCH"],
            ),
        ]

    async def _me_endpoint(self, request: Request) -> Response:
        return await self._gate.serve_bot(request, "get_user", self._me)

    async def _dm_endpoint(self, request: Request) -> Response:
        return await self._gate.serve_bot(request, "create_dm", self._create_dm)

    async def _messages_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._gate.serve_bot(request, "create_message", self._create_message)
        return await self._gate.serve_bot(request, "get_messages", self._get_messages)

    async def _message_endpoint(self, request: Request) -> Response:
        return await self._gate.serve_bot(request, "edit_message", self._edit_message)

    # -- targets -----------------------------------------------------------------------------

    def _visible_channel(self, call: BotCall, bot: EmulatedBot) -> EmulatedChannel:
        channel_id = call.channel_id or ""
        if not is_snowflake(channel_id):
            raise form_error(("channel_id",), *snowflake_error(channel_id), category="path")
        channel = self._state.channel(channel_id)
        if channel is None:
            raise DiscordError(404, UNKNOWN_CHANNEL, category="missing")
        if not self._state.access(channel, bot.id).view:
            raise DiscordError(403, MISSING_ACCESS, category="auth")
        return channel

    def _own_message(
        self, call: BotCall, bot: EmulatedBot, channel: EmulatedChannel
    ) -> StoredMessage:
        message_id = call.request.path_params["message_id"]
        if not is_snowflake(message_id):
            raise form_error(("message_id",), *snowflake_error(message_id), category="path")
        stored = self._state.channel_message(channel.id, message_id)
        if stored is None:
            raise DiscordError(404, UNKNOWN_MESSAGE, category="missing")
        if stored.message.bot_id != bot.id:
            raise DiscordError(403, EDIT_OF_OTHER_AUTHOR, category="auth")
        return stored

    # -- handlers ----------------------------------------------------------------------------

    async def _me(self, call: BotCall, bot: EmulatedBot) -> Response:
        return JSONResponse(bot_user_json(bot), headers=call.headers)

    async def _create_message(self, call: BotCall, bot: EmulatedBot) -> Response:
        channel = self._visible_channel(call, bot)
        if not self._state.access(channel, bot.id).send:
            raise DiscordError(403, MISSING_PERMISSIONS, category="auth")
        if self._state.is_forum(channel.id):
            # A forum takes posts (threads), not messages.
            raise DiscordError(400, NOT_A_TEXT_CHANNEL, category="other")
        body = await self._messages.body(call.request, "create")
        payload, plans = body.payload, body.attachments or []
        require_something(payload, len(plans))
        if channel.recipient_id is not None:
            user = self._state.user(channel.recipient_id)
            if user is None or not user.dms_open:
                raise DiscordError(403, CANNOT_MESSAGE_USER, category="auth")
        stored, created = self._state.store_bot_message(
            bot, channel.id, payload, plans, enforce_nonce=payload.get("enforce_nonce") is True
        )
        if not created:
            self._counters.bump("nonce_deduplicated")
        return JSONResponse(message_json(stored), headers=call.headers)

    async def _get_messages(self, call: BotCall, bot: EmulatedBot) -> Response:
        channel = self._visible_channel(call, bot)
        query = parse_page_query(dict(call.request.query_params))
        if not self._state.access(channel, bot.id).read_history:
            # Discord's documented answer without Read Message History: no messages, no error.
            return JSONResponse([], headers=call.headers)
        by_id = {int(s.message.id): s for s in self._state.history(channel.id)}
        page = [message_json(by_id[i]) for i in page_ids(list(by_id), query)]
        return JSONResponse(page, headers=call.headers)

    async def _edit_message(self, call: BotCall, bot: EmulatedBot) -> Response:
        channel = self._visible_channel(call, bot)
        stored = self._own_message(call, bot, channel)
        return await self._messages.edit(call, stored, "bot_edit")

    async def _create_dm(self, call: BotCall, bot: EmulatedBot) -> Response:
        payload: Any = parse_json(await read_capped(call.request, 1024 * 1024))
        if not isinstance(payload, dict):
            raise form_error((), *type_error("object", payload))
        recipient = payload.get("recipient_id")
        if recipient is None:
            raise form_error(("recipient_id",), "BASE_TYPE_REQUIRED", "This field is required")
        if isinstance(recipient, bool) or not is_snowflake(str(recipient)):
            raise form_error(("recipient_id",), *snowflake_error(recipient))
        user = self._state.user(str(recipient))
        if user is None:
            raise DiscordError(404, UNKNOWN_USER, category="missing")
        channel = self._state.existing_dm(bot.id, user.id)
        if channel is None:
            if not self._limiter.open_dm(bot.id):
                raise DiscordError(400, OPENING_DMS_TOO_FAST, category="other")
            channel, created = self._state.open_dm(bot.id, user.id)
            if created:
                self._counters.bump("dms_opened")
        return JSONResponse(dm_channel_json(channel, user), headers=call.headers)
