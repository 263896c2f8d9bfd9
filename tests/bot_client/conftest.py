"""Fixtures for the bot client suite: the real service app in-process, Discord emulated.

The emulator's rate limits are lifted here: pacing is the service's business (its own suite
covers it), and the client tests send fifty results at once.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bot_client import RelayClient
from service.config import Settings, load_settings
from service.testing import DiscordEmulator, EmulatedWebhook
from tests.bot_client.fake_relay import FAST_RETRY, FakeRelay
from tests.conftest import Clock
from tests.support import ACME_KEY, API_KEYS, SECRET_KEY

with warnings.catch_warnings():
    # discord.py imports audioop, deprecated in 3.11; not ours to fix, and not worth the noise.
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord  # noqa: F401

MAX_BODY_BYTES = 64 * 1024
OPEN_LIMITS = (10_000, 1.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path}/relay.db",
        api_keys=API_KEYS,
        secret_key=SECRET_KEY,
        max_body_bytes=MAX_BODY_BYTES,
        global_rps=10_000,
    )


@pytest.fixture
def emulator(clock: Clock) -> DiscordEmulator:
    return DiscordEmulator(
        wall_clock=clock,
        webhook_limit=OPEN_LIMITS,
        channel_limit=OPEN_LIMITS,
        global_limit=OPEN_LIMITS,
    )


@pytest.fixture
def hook(emulator: DiscordEmulator) -> EmulatedWebhook:
    return emulator.create_webhook()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
async def relay(app: FastAPI, spool_dir: Path) -> AsyncIterator[RelayClient]:
    """The client under test, talking to the in-process app as tenant acme."""
    async with RelayClient(
        "http://relay",
        api_key=ACME_KEY,
        transport=httpx.ASGITransport(app=app),
        retries=FAST_RETRY,
        spool_dir=spool_dir,
    ) as client:
        yield client


@pytest.fixture
def fake() -> FakeRelay:
    """A scripted relay that knows runs (the service's runs are another part's work)."""
    return FakeRelay()
