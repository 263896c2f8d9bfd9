"""Assembly of the emulator's ASGI app: Discord's webhook and bot routes under `/api/v8`-`/api/v10`
(and the unversioned `/api`, served but counted as a misbehaviour), the control API under
`/_emulator`.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from service.testing.bot_routes import BotRoutes
from service.testing.counters import CounterBook
from service.testing.gate import api_version, mask_path
from service.testing.routes import DiscordRoutes

log = logging.getLogger(__name__)

API_VERSIONS = (8, 9, 10)


class TrafficMiddleware:
    """Counts every request to Discord's routes and checks the headers every call must carry."""

    def __init__(self, app: ASGIApp, counters: CounterBook) -> None:
        self._app = app
        self._counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            user_agent = None
            for name, value in scope.get("headers", []):
                if name == b"user-agent":
                    user_agent = value.decode("latin-1")
            self._counters.request(user_agent=user_agent, unversioned=api_version(path) is None)
            log.debug("discord request", extra={"method": scope["method"], "path": mask_path(path)})
        await self._app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Discord answers unknown routes and methods with JSON, never with a text page.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    reason = {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return JSONResponse({"message": f"{status}: {reason}", "code": 0}, status_code=status)


def build_app(
    discord: DiscordRoutes,
    bots: BotRoutes,
    control_routes: list[BaseRoute],
    counters: CounterBook,
) -> ASGIApp:
    def api() -> list[BaseRoute]:
        return [*discord.routes(), *bots.routes()]

    routes: list[BaseRoute] = [Mount(f"/api/v{version}", routes=api()) for version in API_VERSIONS]
    routes.append(Mount("/_emulator", routes=control_routes))
    routes.append(Mount("/api", routes=api()))
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    return TrafficMiddleware(app, counters)
