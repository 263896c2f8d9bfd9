"""Fixtures shared by every layer of the suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.api.deps import Services
from service.app import create_app
from service.config import Settings, load_settings
from service.delivery.worker import Worker
from service.store.sqlite import SQLiteStore
from service.testing import DiscordEmulator
from tests.support import API_KEYS, CIPHER, SECRET_KEY


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path}/relay.db", api_keys=API_KEYS, secret_key=SECRET_KEY
    )


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "store.db"), cipher=CIPHER)
    await store.open()
    yield store
    await store.close()


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator(clock: Clock) -> DiscordEmulator:
    """Discord, in-process; it shares the test's wall clock for snowflakes and token expiry."""
    return DiscordEmulator(wall_clock=clock)


@pytest.fixture
async def app(
    settings: Settings, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[FastAPI]:
    """The whole app in-process with its lifespan; Discord is the emulator. The worker does not
    run on its own: tests call ``worker.drain()``."""
    app = create_app(
        settings,
        clock=clock,
        background=False,
        discord_transport=httpx.ASGITransport(app=emulator.app),
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
        yield http


@pytest.fixture
def services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
def worker(services: Services) -> Worker:
    assert services.worker is not None
    return services.worker
