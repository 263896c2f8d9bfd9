"""``create_app(settings)``: the FastAPI application with its store and background tasks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import yaml
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi_offline import FastAPIOffline
from prometheus_fastapi_instrumentator import Instrumentator

from service import __version__
from service.api import bot, destinations, health, results, runs
from service.api.body import document_bodies
from service.api.errors import install_error_handlers
from service.config import Settings
from service.middleware import (
    AccessLogMiddleware,
    AuthFirstMiddleware,
    BodyGuardMiddleware,
    ByteBudget,
)
from service.services import build_services
from service.store import Store
from service.ui import install_ui

DESCRIPTION = """\
result-relay takes finished results from a Discord bot, stores them durably, and delivers them
through channel webhooks (or the interaction follow-up while its token is valid). What cannot be
delivered is kept as an orphaned result, retrievable here.

All `/v1` routes need `Authorization: Bearer <api key>`. Errors are
`{"error": {"code": "...", "message": "..."}}`.
"""


def openapi_yaml(app: FastAPI) -> str:
    """The app's OpenAPI description as YAML, in the order FastAPI builds it."""
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=100)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    background: bool = True,
    discord_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app.

    ``background`` runs the delivery worker (when ``RELAY_WORKER_ENABLED``) and retention; tests
    leave it off and call ``app.state.services.worker.drain()``. ``store``, ``clock`` and
    ``discord_transport`` (e.g. the emulator through ``httpx.ASGITransport``) are for tests.
    """
    services = build_services(
        settings, store=store, clock=clock, discord_transport=discord_transport
    )
    services.worker_expected = background and services.worker is not None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start(background=background)
        try:
            yield
        finally:
            await services.stop()

    # FastAPIOffline serves the Swagger UI and ReDoc assets from its package, not a CDN.
    app = FastAPIOffline(
        title="result-relay",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url="/docs/assets",
    )
    app.state.services = services
    app.openapi = lambda: document_bodies(FastAPI.openapi(app))  # type: ignore[method-assign]
    app.include_router(results.router)
    app.include_router(runs.router)
    app.include_router(destinations.router)
    app.include_router(bot.router)
    app.include_router(health.router)
    install_error_handlers(app)
    install_ui(app, settings)
    Instrumentator(registry=services.metrics.registry, excluded_handlers=["/metrics"]).instrument(
        app
    ).expose(
        app,
        include_in_schema=True,
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        description="Metrics in the Prometheus text format.",
    )
    # The middleware added last runs outermost: the log line covers every refusal, and the key
    # is checked before the body guard reserves, waits for or reads a byte of the body.
    count_error = services.metrics.request_errors.labels
    app.state.body_budget = budget = ByteBudget(settings.max_inflight_bytes)
    app.add_middleware(
        BodyGuardMiddleware,
        max_bytes=settings.max_body_bytes,
        budget=budget,
        timeout=settings.body_timeout_seconds,
        on_error=lambda code: count_error(code).inc(),
    )
    app.add_middleware(
        AuthFirstMiddleware,
        authenticator=services.auth,
        on_error=lambda code: count_error(code).inc(),
    )
    app.add_middleware(AccessLogMiddleware)
    return app
