"""The control API under `/_emulator`: the `DiscordEmulator` methods over HTTP (JSON in and out),
for tests that run the emulator in another process. The routes are listed in the package
docstring. Errors answer `{"error": "..."}` with 400 (bad input) or 404 (unknown id).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from service.testing.models import EmulatedWebhook
from service.testing.ratelimit import LIMIT_NAMES

if TYPE_CHECKING:
    from service.testing.emulator import DiscordEmulator

Endpoint = Callable[[Request], Awaitable[Response]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def webhook_json(webhook: EmulatedWebhook) -> dict[str, Any]:
    return {**asdict(webhook), "url": webhook.url}


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


def _limit(value: Any, name: str) -> tuple[int, float] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and len(value) == 2:
        count, per = value
        if isinstance(count, int) and isinstance(per, int | float):
            return count, float(per)
    raise ControlError(400, f"{name} must be [count, per_seconds]")


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ControlError(400, f"{name} must be true or false")
    return value


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).isdecimal():
        raise ControlError(400, f"{name} must be a snowflake")
    return str(value)


def _guard(handler: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except KeyError as exc:
            return JSONResponse({"error": str(exc.args[0])}, status_code=404)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return endpoint


def control_routes(emulator: DiscordEmulator) -> list[BaseRoute]:
    """Routes to mount at `/_emulator`, bound to `emulator`."""

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "schema_validation": emulator.load_schema() is not None})

    async def create_webhook(request: Request) -> Response:
        body = await _json_object(request)
        webhook = emulator.create_webhook(
            channel_id=body.get("channel_id"),
            guild_id=body.get("guild_id"),
            forum=bool(body.get("forum", False)),
            name=str(body.get("name", "relay-test")),
        )
        return JSONResponse(webhook_json(webhook), status_code=201)

    async def delete_webhook(request: Request) -> Response:
        emulator.delete_webhook(request.path_params["webhook_id"])
        return Response(status_code=204)

    async def create_thread(request: Request) -> Response:
        thread_id = emulator.create_thread(request.path_params["webhook_id"])
        return JSONResponse({"thread_id": thread_id}, status_code=201)

    async def webhook_messages(request: Request) -> Response:
        query = request.query_params
        messages = emulator.messages(
            request.path_params["webhook_id"],
            query.get("thread_id"),
            include_deleted=query.get("include_deleted", "false").lower() == "true",
        )
        return JSONResponse({"messages": [m.to_json() for m in messages]})

    async def create_bot(request: Request) -> Response:
        body = await _json_object(request)
        bot = emulator.create_bot(username=str(body.get("username", "relay-bot")))
        return JSONResponse({"id": bot.id, "token": bot.token, "username": bot.username}, 201)

    async def create_channel(request: Request) -> Response:
        body = await _json_object(request)
        channel = emulator.create_channel(
            guild_id=_optional_id(body, "guild_id"), channel_id=_optional_id(body, "channel_id")
        )
        return JSONResponse(asdict(channel), status_code=201)

    async def channel_access(request: Request) -> Response:
        body = await _json_object(request)
        bot_id = _optional_id(body, "bot_id")
        if bot_id is None:
            raise ControlError(400, "bot_id is required")
        emulator.set_access(
            request.path_params["channel_id"],
            bot_id,
            view=_flag(body, "view", True),
            send=_flag(body, "send", True),
            read_history=_flag(body, "read_history", True),
        )
        return Response(status_code=204)

    async def channel_messages(request: Request) -> Response:
        query = request.query_params
        messages = emulator.channel_messages(
            request.path_params["channel_id"],
            include_deleted=query.get("include_deleted", "false").lower() == "true",
        )
        return JSONResponse({"messages": [m.to_json() for m in messages]})

    async def create_user(request: Request) -> Response:
        body = await _json_object(request)
        user = emulator.create_user(dms_open=_flag(body, "dms_open", True))
        return JSONResponse(asdict(user), status_code=201)

    async def update_user(request: Request) -> Response:
        body = await _json_object(request)
        if "dms_open" not in body:
            raise ControlError(400, "dms_open is required")
        user = emulator.set_dms_open(request.path_params["user_id"], _flag(body, "dms_open", True))
        return JSONResponse(asdict(user))

    async def dm_messages(request: Request) -> Response:
        messages = emulator.dm_messages(request.path_params["user_id"])
        return JSONResponse({"messages": [m.to_json() for m in messages]})

    async def create_interaction(request: Request) -> Response:
        body = await _json_object(request)
        interaction = emulator.create_interaction(
            application_id=body.get("application_id"),
            age_seconds=float(body.get("age_seconds", 0.0)),
            channel_id=body.get("channel_id"),
        )
        return JSONResponse(asdict(interaction), status_code=201)

    async def followups(request: Request) -> Response:
        messages = emulator.followups(request.path_params["interaction_id"])
        return JSONResponse({"messages": [m.to_json() for m in messages]})

    async def original(request: Request) -> Response:
        return JSONResponse(emulator.original(request.path_params["interaction_id"]).to_json())

    async def edits(request: Request) -> Response:
        found = emulator.edits(request.path_params["message_id"])
        return JSONResponse({"edits": [e.to_json() for e in found]})

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json_object(request)
            unknown = sorted(set(body) - set(LIMIT_NAMES))
            if unknown:
                raise ControlError(400, f"unknown limits {unknown}; expected {list(LIMIT_NAMES)}")
            emulator.set_limits(
                webhook=_limit(body.get("webhook"), "webhook"),
                channel=_limit(body.get("channel"), "channel"),
                global_=_limit(body.get("global"), "global"),
                bot_route=_limit(body.get("bot_route"), "bot_route"),
                bot_global=_limit(body.get("bot_global"), "bot_global"),
                dm_open=_limit(body.get("dm_open"), "dm_open"),
            )
        return JSONResponse({name: list(limit) for name, limit in emulator.limits.items()})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            emulator.clear_faults()
            return Response(status_code=204)
        if request.method == "POST":
            body = await _json_object(request)
            seconds = body.get("seconds")
            fault = emulator.inject_fault(
                str(body.get("kind")),
                webhook_id=_optional_id(body, "webhook_id"),
                channel_id=_optional_id(body, "channel_id"),
                count=int(body.get("count", 1)),
                seconds=None if seconds is None else float(seconds),
            )
            return JSONResponse(fault.to_json(), status_code=201)
        return JSONResponse({"faults": [f.to_json() for f in emulator.pending_faults()]})

    async def counters(request: Request) -> Response:
        return JSONResponse(emulator.counters.as_dict())

    async def reset_counters(request: Request) -> Response:
        emulator.reset_counters()
        return Response(status_code=204)

    table: list[tuple[str, Endpoint, list[str]]] = [
        ("/health", health, ["GET"]),
        ("/webhooks", create_webhook, ["POST"]),
        ("/webhooks/{webhook_id}", delete_webhook, ["DELETE"]),
        ("/webhooks/{webhook_id}/threads", create_thread, ["POST"]),
        ("/webhooks/{webhook_id}/messages", webhook_messages, ["GET"]),
        ("/bots", create_bot, ["POST"]),
        ("/channels", create_channel, ["POST"]),
        ("/channels/{channel_id}/access", channel_access, ["PUT"]),
        ("/channels/{channel_id}/messages", channel_messages, ["GET"]),
        ("/users", create_user, ["POST"]),
        ("/users/{user_id}", update_user, ["PUT"]),
        ("/users/{user_id}/dms", dm_messages, ["GET"]),
        ("/interactions", create_interaction, ["POST"]),
        ("/interactions/{interaction_id}/followups", followups, ["GET"]),
        ("/interactions/{interaction_id}/original", original, ["GET"]),
        ("/messages/{message_id}/edits", edits, ["GET"]),
        ("/limits", limits, ["GET", "PUT"]),
        ("/faults", faults, ["GET", "POST", "DELETE"]),
        ("/counters", counters, ["GET"]),
        ("/counters/reset", reset_counters, ["POST"]),
    ]
    return [Route(path, _guard(fn), methods=methods) for path, fn, methods in table]
