"""Everything a Discord request passes before its handler runs, in Discord's order.

Webhook routes: Cloudflare ban, injected faults, the id's shape, the global and per-route rate
limits, then the webhook or interaction token. Bot-token routes: Cloudflare ban, injected
faults, the `Authorization: Bot` token, the bot's global limit and the route bucket. The gate
also turns `DiscordError`s and 429s into responses and keeps the counters, so the handlers in
`routes.py` and `bot_routes.py` only deal with bodies and targets.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal, NoReturn, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.testing.counters import CounterBook
from service.testing.errors import (
    INVALID_WEBHOOK_TOKEN,
    UNKNOWN_WEBHOOK,
    DiscordError,
    form_error,
    snowflake_error,
    unauthorized,
)
from service.testing.faults import (
    AFTER_STORE,
    EDIT_ONLY,
    DropResponse,
    Fault,
    FaultQueue,
    cloudflare_ban_response,
    gateway_response,
)
from service.testing.models import EmulatedBot, EmulatedInteraction, EmulatedWebhook
from service.testing.ratelimit import RateLimiter, Verdict
from service.testing.state import EmulatorState

RouteKey = Literal["execute", "edit", "webhook", "message"]
# Edits take from the bucket that executes take from (one webhook, or one interaction, 5 per
# 2 s as REFERENCE.md observes); GET and DELETE of a message keep a bucket of their own.
_BUCKETS: dict[RouteKey, str] = {
    "execute": "execute",
    "edit": "execute",
    "webhook": "webhook",
    "message": "message",
}
BotRouteKey = Literal["get_user", "create_message", "get_messages", "edit_message", "create_dm"]
# The counter names of the bot routes (`counters.bot_requests`), as Discord's docs write them.
BOT_ROUTES: dict[BotRouteKey, str] = {
    "get_user": "GET /users/@me",
    "create_message": "POST /channels/{channel_id}/messages",
    "get_messages": "GET /channels/{channel_id}/messages",
    "edit_message": "PATCH /channels/{channel_id}/messages/{message_id}",
    "create_dm": "POST /users/@me/channels",
}
_BOT_AUTH = re.compile(r"^Bot (\S+)$")
_VERSIONED = re.compile(r"^/api/v(\d+)/")
_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")


def api_version(path: str) -> int | None:
    """The API version in the path; None for the unversioned `/api/webhooks/...` form."""
    match = _VERSIONED.match(path)
    return int(match.group(1)) if match else None


def is_snowflake(value: str) -> bool:
    return bool(_SNOWFLAKE.match(value)) and int(value) < 2**64


def mask_path(path: str) -> str:
    """The path with the webhook or interaction token hidden, for logs."""
    return re.sub(r"(/webhooks/[^/]+/)[^/?]+", r"\1***", path)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Target:
    """The authenticated recipient of a request: a channel webhook or an interaction."""

    webhook: EmulatedWebhook | None = None
    interaction: EmulatedInteraction | None = None


@dataclass
class Call:
    request: Request
    webhook_id: str
    token: str
    route: RouteKey
    headers: dict[str, str] = field(default_factory=dict)
    # An injected 30046 waiting for this edit; the handler clears it when it answers with it.
    edit_fault: Fault | None = None

    @property
    def version(self) -> int | None:
        return api_version(self.request.url.path)

    @property
    def thread_query(self) -> str | None:
        return self.request.query_params.get("thread_id")


@dataclass
class BotCall:
    """A request to a bot-token route; the handler gets the bot once the token checked out."""

    request: Request
    route: BotRouteKey
    headers: dict[str, str] = field(default_factory=dict)
    # An injected 30046 waiting for this edit; the handler clears it when it answers with it.
    edit_fault: Fault | None = None

    @property
    def version(self) -> int | None:
        return api_version(self.request.url.path)

    @property
    def channel_id(self) -> str | None:
        value = self.request.path_params.get("channel_id")
        return str(value) if value is not None else None


class Answerable(Protocol):
    """What the shared fault and answer code needs of a webhook or bot call."""

    headers: dict[str, str]
    edit_fault: Fault | None

    @property
    def request(self) -> Request: ...

    @property
    def version(self) -> int | None: ...


Handler = Callable[[Call, Target], Awaitable[Response]]
BotHandler = Callable[[BotCall, EmulatedBot], Awaitable[Response]]


class Gate:
    """Runs the shared prologue and epilogue around every Discord route handler."""

    def __init__(
        self,
        *,
        state: EmulatorState,
        limiter: RateLimiter,
        faults: FaultQueue,
        counters: CounterBook,
        wall_clock: Callable[[], float],
    ) -> None:
        self._state = state
        self._limiter = limiter
        self._faults = faults
        self._counters = counters
        self._wall_clock = wall_clock

    async def serve(self, request: Request, route: RouteKey, handler: Handler) -> Response:
        call = Call(
            request=request,
            webhook_id=request.path_params["webhook_id"],
            token=request.path_params["token"],
            route=route,
        )
        in_flight = (call.webhook_id, _digest(call.token))
        self._counters.enter(in_flight)
        try:
            try:
                return await self._run(call, handler)
            except DiscordError as err:
                return self.error_response(call, err)
        finally:
            self._counters.leave(in_flight)

    async def serve_bot(
        self, request: Request, route: BotRouteKey, handler: BotHandler
    ) -> Response:
        """Runs a bot-token route: faults aimed at its channel, token, limits, handler."""
        call = BotCall(request=request, route=route)
        self._counters.bot_request(BOT_ROUTES[route])
        try:
            if self._counters.banned():
                return self._cloudflare()
            fault = self._faults.take(
                None, channel_id=call.channel_id, edit=route == "edit_message"
            )
            return await self._with_fault(call, fault, lambda: self._admit_bot(call, handler))
        except DiscordError as err:
            return self.error_response(call, err)

    async def _admit_bot(self, call: BotCall, handler: BotHandler) -> Response:
        match = _BOT_AUTH.match(call.request.headers.get("authorization", ""))
        token = match.group(1) if match else ""
        key = ("bot", _digest(token))
        self._counters.touch_target(key)
        bot = self._state.bot_for_token(token) if match else None
        if bot is None:
            self._counters.mark_dead(key, 401)
            raise unauthorized()
        verdict = self._limiter.acquire_bot(
            bot_id=bot.id, route=call.route, major=call.channel_id or ""
        )
        if verdict.premature:
            self._counters.bump("premature_requests")
        call.headers = dict(verdict.headers)
        if verdict.limited:
            return self.rate_limited(call, verdict)
        return await handler(call, bot)

    async def _run(self, call: Call, handler: Handler) -> Response:
        if self._counters.banned():
            return self._cloudflare()
        stored = self._state.webhook(call.webhook_id)
        channel_id = stored.public.channel_id if stored is not None else None
        fault = self._faults.take(call.webhook_id, channel_id=channel_id, edit=call.route == "edit")
        return await self._with_fault(call, fault, lambda: self._admit_and_handle(call, handler))

    async def _with_fault(
        self,
        call: Answerable,
        fault: Fault | None,
        admit: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Answers with the fault, or around the real answer (after-store and edit faults)."""
        if fault is not None and fault.kind in EDIT_ONLY:
            call.edit_fault = fault
            try:
                return await admit()
            finally:
                if call.edit_fault is not None:
                    # Refused before the edit (rate limit, token, body): the next edit meets it.
                    self._faults.give_back(call.edit_fault)
        if fault is not None and fault.kind not in AFTER_STORE:
            return await self._pre_store_fault(fault)
        try:
            response = await admit()
        except DiscordError:
            if fault is not None:
                self._faults.give_back(fault)
            raise
        if fault is None:
            return response
        if response.status_code >= 300:
            self._faults.give_back(fault)
            return response
        if fault.kind == "drop_after_store":
            return DropResponse()
        await asyncio.sleep(fault.seconds)
        return response

    async def _pre_store_fault(self, fault: Fault) -> Response:
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        elif fault.kind == "drop":
            return DropResponse()
        elif fault.kind == "cloudflare_429":
            return self._cloudflare()
        return gateway_response(fault.kind)

    def _cloudflare(self) -> Response:
        self._counters.rate_limited("cloudflare")
        self._counters.invalid()
        return cloudflare_ban_response()

    async def _admit_and_handle(self, call: Call, handler: Handler) -> Response:
        if not is_snowflake(call.webhook_id):
            raise form_error(("webhook_id",), *snowflake_error(call.webhook_id), category="path")
        webhook = self._state.webhook(call.webhook_id)
        interaction_route = webhook is None and self._state.is_application(call.webhook_id)
        self._counters.touch_target(call.webhook_id, (call.webhook_id, _digest(call.token)))
        owner = f"{call.webhook_id}:{_digest(call.token)}" if interaction_route else call.webhook_id
        verdict = self._limiter.acquire_route(
            bucket=(owner, _BUCKETS[call.route]),
            lane=(call.webhook_id, call.thread_query or ""),
            counts_global=not interaction_route,
        )
        if verdict.premature:
            self._counters.bump("premature_requests")
        call.headers = dict(verdict.headers)
        if verdict.limited:
            return self.rate_limited(call, verdict)
        return await handler(call, self._authenticate(call, interaction_route))

    def _authenticate(self, call: Call, interaction_route: bool) -> Target:
        stored = self._state.webhook(call.webhook_id)
        if stored is not None:
            if stored.deleted:
                self._dead(call.webhook_id, 404)
            if not secrets.compare_digest(stored.public.token.encode(), call.token.encode()):
                self._dead((call.webhook_id, _digest(call.token)), 401)
            return Target(webhook=stored.public)
        if interaction_route:
            interaction = self._state.interaction_for(call.webhook_id, call.token)
            if interaction is None:
                self._dead((call.webhook_id, _digest(call.token)), 404)
            elif self._wall_clock() >= interaction.expires_at:
                self._dead((call.webhook_id, _digest(call.token)), 401)
            else:
                return Target(interaction=interaction)
        self._dead(call.webhook_id, 404)

    def _dead(self, key: Hashable, status: int) -> NoReturn:
        self._counters.mark_dead(key, status)
        code = UNKNOWN_WEBHOOK if status == 404 else INVALID_WEBHOOK_TOKEN
        raise DiscordError(status, code, category="missing" if status == 404 else "auth")

    def rate_limited(
        self, call: Answerable, verdict: Verdict, *, scope: str | None = None
    ) -> Response:
        """A 429 in Discord's shape; unversioned calls get `retry_after` in milliseconds, as
        on the old default API version they land on."""
        kind = scope or verdict.scope or "user"
        retry = verdict.retry_after
        self._counters.rate_limited(kind)
        if kind != "shared":
            self._counters.invalid()
        headers = {**call.headers, "Retry-After": str(max(math.ceil(retry), 1))}
        if kind == "shared":
            headers["X-RateLimit-Scope"] = "shared"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry if call.version is not None else math.ceil(retry * 1000),
            "global": kind == "global",
        }
        return JSONResponse(body, status_code=429, headers=headers)

    def error_response(self, call: Answerable, err: DiscordError) -> Response:
        self._counters.refused(err.code)
        if err.status == 401:
            self._counters.bump("unauthorized")
        if err.status == 400:
            self._counters.bump("payload_400s" if err.category == "body" else "other_400s")
        elif err.status == 413:
            self._counters.bump("payload_413s")
        elif err.status in (401, 403):
            self._counters.invalid()
        return JSONResponse(err.body(), status_code=err.status, headers=call.headers)
