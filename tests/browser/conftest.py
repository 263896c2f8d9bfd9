"""A real headless Chromium (the distribution's, never a download) against a real
``result-relay serve`` process and the Discord emulator, over real sockets.

One browser, one service and one emulator serve every test of a module (there is one); each
test gets a fresh browser context (its own cookies). Not the whole session: Playwright's
synchronous API keeps an event loop running while it lives, and the async tests of the other
folders need none to be. Without Chromium or Playwright the tests skip, saying which is
missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from service.testing import DiscordEmulator, EmulatorServer
from tests.acceptance._support import Relay, Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("RELAY_TEST_CHROMIUM", "/usr/bin/chromium")


def _chromium() -> str:
    found = shutil.which(CHROMIUM) or shutil.which("chromium")
    if found is None:
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install the distribution's (apt-get install chromium); "
            "the browser tests never download one"
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@dataclass
class Stack:
    """The service under test and the Discord it talks to."""

    server: Server
    emulator: DiscordEmulator

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("browser")
    relay = Relay(folder, f"sqlite:///{folder / 'relay.db'}")
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        try:
            server = relay.start(
                {"RELAY_DISCORD_API_BASE": discord.api_base, "RELAY_POLL_SECONDS": "0.2"}
            )
            yield Stack(server, emulator)
        finally:
            relay.stop_all()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh context (no cookies) on the service; fails the test on any CSP violation or
    script error the page reports."""
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    # Refusals (a wrong key, a form without its token, another tenant's result) answer 401,
    # 403 and 404 on purpose: the browser logs those loads as errors.
    refusals = ("status of 401", "status of 403", "status of 404")
    unexpected = [p for p in problems if not any(r in p for r in refusals)]
    assert unexpected == [], unexpected


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page under tests/browser/artifacts/ and print where."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
