"""The client against ``python -m service serve`` over a real socket, Discord emulated on another.

One story, as a bot lives it: results spooled while the service is not running, the service
starts, one flush, every result reaches Discord exactly once; then reading, listing, named
destinations, redelivery and errors, all over TCP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot_client import (
    AuthenticationError,
    ConflictError,
    Destination,
    InteractionRef,
    NotFoundError,
    RelayClient,
    Spool,
)
from service.testing import EmulatorServer, free_port
from tests.bot_client.conftest import FAST_RETRY, OPEN_LIMITS
from tests.bot_client.test_spool import delivered_ids
from tests.support import SECRET_KEY

pytestmark = pytest.mark.acceptance

KEY = "acme-key-0123456789abcdef"
COUNT = 50
HANDOFF = 60.0  # RELAY_HANDOFF_AT_SECONDS: the runs below start 3 s before it


@pytest.fixture
async def discord() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer() as server:
        server.emulator.set_limits(webhook=OPEN_LIMITS, channel=OPEN_LIMITS, global_=OPEN_LIMITS)
        yield server


class Service:
    """``python -m service serve`` on a port chosen before it runs."""

    def __init__(self, tmp_path: Path, discord: EmulatorServer) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._tmp = tmp_path
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        self._env.update(
            RELAY_HANDOFF_AT_SECONDS=str(HANDOFF),
            RELAY_PROGRESS_INTERVAL_SECONDS="0.5",
            RELAY_POLL_SECONDS="0.2",
            RELAY_DATABASE_URL=f"sqlite:///{tmp_path}/relay.db",
            RELAY_API_KEYS=f"acme:{KEY}",
            RELAY_DISCORD_API_BASE=discord.api_base,
            RELAY_GLOBAL_RPS="10000",
            RELAY_LOG_FORMAT="json",
            RELAY_SECRET_KEY=SECRET_KEY,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self._tmp / "service.stderr").open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(self.port)],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stderr()
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"the service did not start\n{self.stderr()}")

    def stderr(self) -> str:
        return (self._tmp / "service.stderr").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def service(tmp_path: Path, discord: EmulatorServer) -> Iterator[Service]:
    relay = Service(tmp_path, discord)
    try:
        yield relay
    finally:
        relay.stop()


async def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_bot_against_the_real_service_process(
    tmp_path: Path, discord: EmulatorServer, service: Service
) -> None:
    emulator = discord.emulator
    hook = emulator.create_webhook()
    spool_dir = tmp_path / "spool"
    async with RelayClient(
        service.base_url, api_key=KEY, retries=FAST_RETRY, spool_dir=spool_dir, timeout=5.0
    ) as relay:
        # given fifty results finished while the service is not running
        for n in range(COUNT):
            outcome = await relay.submit_result(
                workflow_id=f"wf_{n:03}", results={"n": n}, destination=hook.url
            )
            assert outcome.spooled
        assert len(Spool(spool_dir).pending()) == COUNT

        # when the service starts and the bot flushes its spool once
        await asyncio.to_thread(service.start)
        report = await relay.flush_spool()

        # then all fifty are taken and Discord receives each exactly once
        assert (report.accepted, report.remaining, report.rejected) == (COUNT, 0, 0)
        await wait_for(lambda: sum(delivered_ids(emulator, hook).values()) >= COUNT)
        await asyncio.sleep(0.2)  # room for a stray duplicate to show up, if there were one
        assert delivered_ids(emulator, hook) == {f"wf_{n:03}": 1 for n in range(COUNT)}

        # reading back and listing across pages
        record = await relay.get_result("wf_007")
        assert (record.status, record.results) == ("delivered", {"n": 7})
        listed = [r.workflow_id async for r in relay.list_results(page_size=20)]
        assert sorted(listed) == [f"wf_{n:03}" for n in range(COUNT)]

        # a named destination, checked with Discord by the service, then used and redelivered
        other = emulator.create_webhook()
        await relay.put_destination("alerts", other.url)
        await relay.submit_result(
            workflow_id="wf_named", results={}, destination=Destination(name="alerts")
        )
        await wait_for(lambda: len(emulator.messages(other.id)) == 1)
        await relay.redeliver("wf_named", destination=hook.url)
        await wait_for(lambda: delivered_ids(emulator, hook).get("wf_named") == 1)

        # errors, mapped
        with pytest.raises(NotFoundError):
            await relay.get_result("wf_missing")
        with pytest.raises(ConflictError):
            await relay.submit_result(workflow_id="wf_000", results={"n": -1}, destination=hook.url)
    async with RelayClient(service.base_url, api_key="wrong-key-0123456789") as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.list_destinations()
    assert hook.token not in service.stderr()


async def test_a_run_through_the_client_reaches_the_user_across_the_hand_off(
    tmp_path: Path, discord: EmulatorServer, service: Service
) -> None:
    # given a bot whose deferred interaction hands off 3 s from now, and the service running
    emulator = discord.emulator
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=HANDOFF - 3)
    ref = InteractionRef(
        application_id=interaction.application_id,
        interaction_id=interaction.interaction_id,
        token=interaction.token,
    )
    await asyncio.to_thread(service.start)
    async with RelayClient(service.base_url, api_key=KEY, retries=FAST_RETRY) as relay:
        # when the bot runs its long command inside relay.run, reporting progress
        async with relay.run(ref, workflow_id="wf-run", destination=hook.url, title="Scan") as run:
            await run.progress("fetch", 1, 3)
            await wait_for(lambda: bool(emulator.edits(emulator.original(ref.interaction_id).id)))
            await asyncio.sleep(4)  # past the hand-off
            await run.progress("analyse", 2, 3)
            await asyncio.sleep(1)
            await run.finish({"summary": "all clear"})
        await wait_for(lambda: len(emulator.messages(hook.id)) >= 2, 20)
        run_state = await relay.get_run("wf-run")
        await wait_for(lambda: _final(emulator, hook.id), 20)

    # then progress went to @original, which became the hand-off notice naming the command
    original = emulator.original(ref.interaction_id)
    notice = str(emulator.edits(original.id)[-1].payload)
    assert "/retrieve_results workflow_id:wf-run" in notice
    # and the channel holds the progress message (ended as done) and the result, once each
    progress, result = emulator.messages(hook.id)[:2]
    assert "Done" in str(progress.embeds) or "done" in str(progress.embeds)
    assert result.embeds[0]["footer"]["text"].endswith("wf-run")
    assert len(emulator.messages(hook.id)) == 2
    assert run_state.status in ("handed_off", "finished")
    counters = emulator.counters
    assert sum(counters.rate_limited.values()) == 0 and counters.premature_requests == 0
    assert counters.payload_400s == 0 and counters.bad_allowed_mentions == 0


async def test_a_run_that_fails_in_the_bot_tells_the_user_without_a_traceback(
    tmp_path: Path, discord: EmulatorServer, service: Service
) -> None:
    # given a run in a channel only (no interaction)
    emulator = discord.emulator
    hook = emulator.create_webhook()
    await asyncio.to_thread(service.start)
    async with RelayClient(service.base_url, api_key=KEY, retries=FAST_RETRY) as relay:
        # when the bot's work raises inside the block
        with pytest.raises(RuntimeError):
            async with relay.run(None, workflow_id="wf-fail", destination=hook.url) as run:
                await run.progress("transcribe", 1, 2)
                raise RuntimeError(f"model crashed near {hook.url}")
        # then the user is told where it failed, and neither the traceback nor the URL leaks
        await wait_for(lambda: any(_failed(m) for m in emulator.messages(hook.id)), 20)
        record = await relay.get_run("wf-fail")
    failure = next(m for m in emulator.messages(hook.id) if _failed(m))
    text = str(failure.embeds)
    assert "transcribe" in text and "RuntimeError" in text
    assert "Traceback" not in text and hook.token not in text
    assert record.status == "failed"


def _failed(message: Any) -> bool:
    return any("failed" in str(embed.get("title", "")).lower() for embed in message.embeds)


def _final(emulator: Any, webhook_id: str) -> bool:
    messages = emulator.messages(webhook_id)
    if not messages:
        return False
    edits = emulator.edits(messages[0].id)
    return bool(edits) and "done" in str(edits[-1].payload).lower()
