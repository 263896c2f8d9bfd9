"""``create_app(settings)``: the FastAPI application with its store and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
import yaml
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_fastapi_instrumentator import Instrumentator

from service import __version__
from service.api import destinations, health, results
from service.api.deps import Services
from service.api.errors import install_error_handlers
from service.auth import Authenticator
from service.config import Settings
from service.delivery.worker import Worker
from service.discord.sender import Sender, make_discord_client
from service.metrics import Metrics
from service.middleware import AccessLogMiddleware, BodyLimitMiddleware
from service.retention import purge_periodically
from service.store import Store, make_store

log = logging.getLogger(__name__)

DESCRIPTION = """\
result-relay takes finished results from a Discord bot, stores them durably, and delivers them
through channel webhooks (or the interaction follow-up while its token is valid). What cannot be
delivered is kept as an orphaned result, retrievable here.

All `/v1` routes need `Authorization: Bearer <api key>`. Errors are
`{"error": {"code": "...", "message": "..."}}`.
"""


def _log_crash(task: asyncio.Task[None]) -> None:
    """A background task that dies says so at once (``/readyz`` turns 503 as well)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background task crashed", extra={"task": task.get_name()}, exc_info=error)


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
    store = store if store is not None else make_store(settings.database_url)
    metrics = Metrics()
    client = make_discord_client(discord_transport)
    sender = Sender(client, api_base=settings.discord_api_base)
    worker = (
        Worker(store=store, sender=sender, settings=settings, metrics=metrics, clock=clock)
        if settings.worker_enabled
        else None
    )
    services = Services(
        settings=settings,
        store=store,
        auth=Authenticator(store, settings.api_keys),
        metrics=metrics,
        clock=clock,
        sender=sender,
        worker=worker,
        worker_expected=background and worker is not None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        tasks: list[asyncio.Task[None]] = []
        if background and worker is not None:
            worker_task = asyncio.create_task(worker.run(), name="delivery-worker")
            worker_task.add_done_callback(_log_crash)
            tasks.append(worker_task)
        if background:
            tasks.append(
                asyncio.create_task(
                    purge_periodically(
                        store,
                        retention_days=settings.retention_days,
                        interval=settings.purge_interval_seconds,
                        clock=clock,
                        metrics=metrics,
                    ),
                    name="retention",
                )
            )
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.aclose()
            await store.close()

    app = FastAPI(
        title="result-relay",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(results.router)
    app.include_router(destinations.router)
    app.include_router(health.router)
    install_error_handlers(app)
    Instrumentator(registry=metrics.registry, excluded_handlers=["/metrics"]).instrument(
        app
    ).expose(
        app,
        include_in_schema=True,
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        description="Metrics in the Prometheus text format.",
    )
    # The middleware added last runs outermost: the log line covers 413s from the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    return app
