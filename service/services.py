"""``build_services(settings)``: what ``serve`` and ``worker`` both run, built in one place.

The store, the Discord client and sender, the delivery worker, retention and the fleet's clock.
``start`` opens the store and starts the background tasks; ``stop`` ends them in order: the
worker first (its requests in flight finish and its leases are released), then the tasks, the
Discord client and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.auth import Authenticator
from service.bots import sync_configured_bots
from service.clock import DatabaseClock
from service.config import Settings
from service.delivery.worker import Worker
from service.discord.bot_sender import BotSender
from service.discord.sender import Sender, make_discord_client
from service.errors import StoreError
from service.keyfile import cipher_from_settings
from service.metrics import Metrics
from service.retention import purge_periodically
from service.store import Store, make_store

log = logging.getLogger(__name__)

_CLOCK_SYNC_SECONDS = 5.0  # without a worker (which syncs on every heartbeat)


@dataclass(slots=True)
class Services:
    """Everything the process runs and a request may need, built once by ``build_services``."""

    settings: Settings
    store: Store
    auth: Authenticator
    metrics: Metrics
    clock: DatabaseClock
    sender: Sender
    bot_sender: BotSender
    client: httpx.AsyncClient
    worker: Worker | None = None
    worker_expected: bool = False  # readiness requires it only when it runs in this process
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def notify(self) -> None:
        """Tell the in-process worker that new work is due."""
        if self.worker is not None:
            self.worker.notify()

    async def start(self, *, background: bool = True, retention: bool = True) -> None:
        """Open the store (migrations run here), write the bots ``RELAY_BOT_TOKENS`` sets, and
        start the background tasks."""
        await self.store.open()
        with contextlib.suppress(StoreError):
            await self.clock.sync(self.store)
        await sync_configured_bots(
            self.store, self.bot_sender, self.settings.bot_tokens, now=self.clock()
        )
        if not background:
            return
        if self.worker is not None:
            self._spawn(self.worker.run(), "delivery-worker")
        else:
            self._spawn(self._keep_clock(), "database-clock")
        if retention:
            self._spawn(
                purge_periodically(
                    self.store,
                    retention_days=self.settings.retention_days,
                    interval=self.settings.purge_interval_seconds,
                    clock=self.clock,
                    metrics=self.metrics,
                ),
                "retention",
            )

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.client.aclose()
        await self.store.close()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def _keep_clock(self) -> None:
        while True:
            await asyncio.sleep(_CLOCK_SYNC_SECONDS)
            try:
                await self.clock.sync(self.store)
            except StoreError:
                log.warning("could not read the database's clock; will try again")


def build_services(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    discord_transport: httpx.AsyncBaseTransport | None = None,
    worker: bool | None = None,
) -> Services:
    """Build (not start) the services; ``worker`` defaults to ``RELAY_WORKER_ENABLED``.

    ``store``, ``clock`` and ``discord_transport`` (the emulator through ``httpx.ASGITransport``)
    are for tests.
    """
    if store is None:
        store = make_store(settings.database_url, cipher=cipher_from_settings(settings))
    metrics = Metrics()
    fleet_clock = DatabaseClock(clock)
    client = make_discord_client(discord_transport)
    sender = Sender(client, api_base=settings.discord_api_base)
    bot_sender = BotSender(client, api_base=settings.discord_api_base)
    run_worker = settings.worker_enabled if worker is None else worker
    delivery = (
        Worker(
            store=store,
            sender=sender,
            bot_sender=bot_sender,
            settings=settings,
            metrics=metrics,
            clock=fleet_clock,
        )
        if run_worker
        else None
    )
    return Services(
        settings=settings,
        store=store,
        auth=Authenticator(store, settings.api_keys),
        metrics=metrics,
        clock=fleet_clock,
        sender=sender,
        bot_sender=bot_sender,
        client=client,
        worker=delivery,
    )


def _log_crash(task: asyncio.Task[None]) -> None:
    """A background task that dies says so at once (``/readyz`` turns 503 as well)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background task crashed", extra={"task": task.get_name()}, exc_info=error)
