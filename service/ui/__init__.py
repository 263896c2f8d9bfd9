"""The operator dashboard at ``/ui/``: server-rendered pages over the same store and services as
the API, its own assets served by the service (it works offline), behind a strict CSP."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from service.config import Settings
from service.keyfile import secret_keys
from service.ui.routes import SignInNeeded, router
from service.ui.security import SecurityHeadersMiddleware
from service.ui.session import SessionSigner

STATIC = Path(__file__).parent / "static"


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/ui/signin", status_code=303)


def install_ui(app: FastAPI, settings: Settings) -> None:
    """Mount the dashboard on ``app``: its pages, its assets, its session signer and headers."""
    current, previous = secret_keys(settings)
    app.state.ui_signer = SessionSigner([current, *previous])
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(SignInNeeded, _to_sign_in)
    app.add_middleware(SecurityHeadersMiddleware)
