"""Discord's webhook routes: execute, get/modify/delete the webhook, and message edits.

Each handler runs behind `Gate` (rate limits, tokens, faults) and deals with the request body:
parse, validate, apply the forum and thread rules, take the hidden channel limit, store.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.testing.body import parse_body, parse_json, read_capped
from service.testing.counters import CounterBook
from service.testing.errors import (
    FORUM_NEEDS_THREAD,
    FORUM_THREAD_ID_AND_NAME,
    OLD_MESSAGE_EDITS,
    THREAD_NAME_OUTSIDE_FORUM,
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    DiscordError,
    body_error,
    form_error,
    snowflake_error,
    type_error,
)
from service.testing.gate import Answerable, Call, Gate, RouteKey, Target, is_snowflake
from service.testing.ratelimit import RateLimiter, Verdict
from service.testing.render import message_json, webhook_json
from service.testing.schema import MessageSchemas
from service.testing.state import EmulatorState, StoredMessage
from service.testing.validation import (
    MessageKind,
    ValidatedBody,
    mentions_are_safe,
    require_something,
    validate_body,
)

APPLICATION_NAME = "relay-bot"
_TRUE = {"true", "True", "1"}
_FALSE = {"false", "False", "0"}


def _method_not_allowed() -> DiscordError:
    return DiscordError(405, 0, message="405: Method Not Allowed", category="other")


class DiscordRoutes:
    """Route handlers over the emulator's state; `routes()` lists them for one API mount."""

    def __init__(
        self,
        *,
        gate: Gate,
        state: EmulatorState,
        limiter: RateLimiter,
        counters: CounterBook,
        schemas: Callable[[], MessageSchemas | None],
        file_limit: int,
    ) -> None:
        self._gate = gate
        self._state = state
        self._limiter = limiter
        self._counters = counters
        self._schemas = schemas
        self._file_limit = file_limit

    def routes(self) -> list[Route]:
        return [
            Route(
                "/webhooks/{webhook_id}/{token}",
                self._webhook_endpoint,
                methods=["GET", "POST", "PATCH", "DELETE"],
            ),
            Route(
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                self._message_endpoint,
                methods=["GET", "PATCH", "DELETE"],
            ),
        ]

    async def _webhook_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._gate.serve(request, "execute", self._execute)
        return await self._gate.serve(request, "webhook", self._webhook_object)

    async def _message_endpoint(self, request: Request) -> Response:
        route: RouteKey = "edit" if request.method == "PATCH" else "message"
        return await self._gate.serve(request, route, self._message)

    # -- helpers -----------------------------------------------------------------------------

    async def body(
        self, request: Request, kind: MessageKind, existing: set[str] | None = None
    ) -> ValidatedBody:
        """The request's message body, parsed and validated as Discord does for `kind`."""
        parsed = await parse_body(request, file_limit=self._file_limit)
        if isinstance(parsed.payload, dict) and not mentions_are_safe(parsed.payload):
            self._counters.bump("bad_allowed_mentions")
        return validate_body(
            parsed.payload,
            parsed.files,
            kind=kind,
            schemas=self._schemas(),
            existing_attachments=existing,
        )

    def _wait(self, call: Call) -> bool:
        raw = call.request.query_params.get("wait")
        if raw is None or raw in _FALSE:
            return False
        if raw in _TRUE:
            return True
        raise form_error(("wait",), *type_error("boolean", raw), category="path")

    def _thread(self, call: Call, target: Target) -> str | None:
        thread_id = call.thread_query
        if thread_id is None:
            return None
        if target.interaction is not None:
            # Follow-ups post where the interaction happened; REFERENCE.md: no thread_id.
            message = "Interaction follow-ups cannot target a thread."
            raise form_error(("thread_id",), "FIELD_NOT_ALLOWED", message)
        if not is_snowflake(thread_id):
            raise form_error(("thread_id",), *snowflake_error(thread_id), category="path")
        assert target.webhook is not None
        if self._state.thread_parent(thread_id) != target.webhook.channel_id:
            raise DiscordError(404, UNKNOWN_CHANNEL, category="missing")
        return thread_id

    # -- Execute Webhook / interaction follow-up ---------------------------------------------

    async def _execute(self, call: Call, target: Target) -> Response:
        wait = self._wait(call)
        thread_id = self._thread(call, target)
        kind: MessageKind = "followup" if target.interaction else "execute"
        body = await self.body(call.request, kind)
        payload, plans = body.payload, body.attachments or []
        require_something(payload, len(plans))
        if target.interaction is not None:
            interaction = target.interaction
            stored = self._state.store_message(
                owner=interaction.interaction_id,
                author_id=interaction.application_id,
                author_name=APPLICATION_NAME,
                channel_id=interaction.channel_id,
                thread_id=None,
                payload=payload,
                attachments=plans,
                interaction_id=interaction.interaction_id,
                application_id=interaction.application_id,
            )
            # Follow-ups always answer with the message, whatever `wait` says.
            return JSONResponse(message_json(stored), headers=call.headers)
        webhook = target.webhook
        assert webhook is not None
        thread_name = payload.get("thread_name") or None
        if webhook.forum and thread_id and thread_name:
            raise body_error(400, FORUM_THREAD_ID_AND_NAME)
        if webhook.forum and not (thread_id or thread_name):
            raise body_error(400, FORUM_NEEDS_THREAD)
        if thread_name and not webhook.forum:
            raise body_error(400, THREAD_NAME_OUTSIDE_FORUM)
        retry = self._limiter.acquire_channel(
            channel=thread_id or webhook.channel_id, lane=(webhook.id, thread_id or "")
        )
        if retry is not None:
            verdict = Verdict(call.headers, "shared", retry)
            return self._gate.rate_limited(call, verdict, scope="shared")
        message_id = self._state.new_id()
        if thread_name:
            # A forum post's thread id is the id of its starter message, as on Discord.
            thread_id = self._state.create_thread(webhook.id, message_id)
        stored = self._state.store_message(
            owner=webhook.id,
            author_id=webhook.id,
            author_name=webhook.name,
            channel_id=thread_id or webhook.channel_id,
            thread_id=thread_id,
            payload=payload,
            attachments=plans,
            message_id=message_id,
        )
        if not wait:
            return Response(status_code=204, headers=call.headers)
        return JSONResponse(message_json(stored), headers=call.headers)

    # -- the webhook object ------------------------------------------------------------------

    async def _webhook_object(self, call: Call, target: Target) -> Response:
        webhook = target.webhook
        if webhook is None:
            raise _method_not_allowed()
        method = call.request.method
        if method == "DELETE":
            self._state.delete_webhook(webhook.id)
            return Response(status_code=204, headers=call.headers)
        if method == "PATCH":
            payload = parse_json(await read_capped(call.request, 1024 * 1024))
            name = payload.get("name") if isinstance(payload, dict) else None
            if name is not None:
                if not isinstance(name, str) or not 1 <= len(name.strip()) <= 80:
                    message = "Must be between 1 and 80 in length."
                    raise form_error(("name",), "BASE_TYPE_BAD_LENGTH", message)
                webhook = self._state.rename_webhook(webhook.id, name.strip())
        return JSONResponse(webhook_json(webhook), headers=call.headers)

    # -- Get / Edit / Delete Webhook Message -------------------------------------------------

    def _find(self, call: Call, target: Target) -> StoredMessage:
        message_id = call.request.path_params["message_id"]
        if target.interaction is not None:
            interaction = target.interaction
            self._thread(call, target)
            if message_id == "@original":
                owners: tuple[str, ...] = (f"original:{interaction.interaction_id}",)
                message_id = interaction.original_message_id
            else:
                owners = (interaction.interaction_id, f"original:{interaction.interaction_id}")
        else:
            assert target.webhook is not None
            owners = (target.webhook.id,)
        if not is_snowflake(message_id):
            raise form_error(("message_id",), *snowflake_error(message_id), category="path")
        thread_id = self._thread(call, target) if target.webhook else None
        stored = self._state.find_message(owners, message_id)
        # A message in a thread is only found with that thread's id, as on Discord.
        if stored is None or (target.webhook and stored.message.thread_id != thread_id):
            raise DiscordError(404, UNKNOWN_MESSAGE, category="missing")
        return stored

    async def _message(self, call: Call, target: Target) -> Response:
        stored = self._find(call, target)
        method = call.request.method
        if method == "GET":
            return JSONResponse(message_json(stored), headers=call.headers)
        if method == "DELETE":
            self._state.delete_message(stored)
            return Response(status_code=204, headers=call.headers)
        return await self.edit(call, stored, "edit")

    async def edit(self, call: Answerable, stored: StoredMessage, kind: MessageKind) -> Response:
        """Validates and applies an edit (webhook or bot), recorded in `edits` and counted; a
        message over an hour old, or a queued 30046 fault, refuses it."""
        existing = {a.id for a in stored.message.attachments}
        body = await self.body(call.request, kind, existing)
        merged = self._state.preview_edit(stored, body.payload)
        count = len(body.attachments) if body.attachments is not None else len(existing)
        require_something(merged, count)
        if call.edit_fault is not None or not self._state.edit_allowed(stored):
            call.edit_fault = None
            raise DiscordError(400, OLD_MESSAGE_EDITS, category="other")
        self._state.edit_message(stored, body.payload, body.attachments)
        self._counters.bump("edits")
        return JSONResponse(message_json(stored), headers=call.headers)
