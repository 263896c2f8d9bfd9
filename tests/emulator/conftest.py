"""Fixtures for the emulator suite: an emulator on fake clocks behind httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedBot, EmulatedChannel, EmulatedWebhook
from tests.emulator.support import USER_AGENT, WALL_START, FakeClock


@pytest.fixture
def mono() -> FakeClock:
    """The emulator's rate-limit clock."""
    return FakeClock(1_000.0)


@pytest.fixture
def wall() -> FakeClock:
    """The emulator's wall clock (snowflakes, X-RateLimit-Reset, interaction expiry)."""
    return FakeClock(WALL_START)


@pytest.fixture
def emulator(mono: FakeClock, wall: FakeClock) -> DiscordEmulator:
    return DiscordEmulator(clock=mono, wall_clock=wall)


@pytest.fixture
async def discord(emulator: DiscordEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A well-behaved client's HTTP session, pointed at the emulator in-process."""
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://discord.com", headers={"User-Agent": USER_AGENT}
    ) as http:
        yield http


@pytest.fixture
def webhook(emulator: DiscordEmulator) -> EmulatedWebhook:
    return emulator.create_webhook()


@pytest.fixture
def bot(emulator: DiscordEmulator) -> EmulatedBot:
    return emulator.create_bot(username="relay")


@pytest.fixture
def channel(emulator: DiscordEmulator) -> EmulatedChannel:
    return emulator.create_channel()
