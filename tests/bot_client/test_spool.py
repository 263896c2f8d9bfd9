"""The local spool: nothing is lost while the service is down, and nothing arrives twice."""

from __future__ import annotations

import asyncio
import json
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bot_client import RelayClient, RelayUnavailable, RetryPolicy, Spool, SpoolError
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook, free_port
from tests.bot_client.conftest import FAST_RETRY
from tests.support import ACME_KEY

COUNT = 50


def delivered_ids(emulator: DiscordEmulator, hook: EmulatedWebhook) -> Counter[str]:
    """Workflow ids of the messages Discord received, from each summary embed's footer."""
    ids: Counter[str] = Counter()
    for message in emulator.messages(hook.id):
        for embed in message.embeds:
            footer = embed.get("footer", {}).get("text", "")
            if footer.startswith("workflow "):
                ids[footer.removeprefix("workflow ")] += 1
    return ids


def down_client(spool_dir: Path) -> RelayClient:
    """A client whose service is stopped: nothing listens on its port."""
    return RelayClient(
        f"http://127.0.0.1:{free_port()}",
        api_key=ACME_KEY,
        retries=FAST_RETRY,
        spool_dir=spool_dir,
        timeout=2.0,
    )


async def spool_results(spool_dir: Path, hook: EmulatedWebhook, count: int = COUNT) -> None:
    async with down_client(spool_dir) as relay:
        for n in range(count):
            outcome = await relay.submit_result(
                workflow_id=f"wf_{n:03}", results={"n": n}, destination=hook.url
            )
            assert outcome.status == "spooled" and outcome.path is not None
            assert outcome.path.exists() and outcome.record is None


class FailingAfter(httpx.AsyncBaseTransport):
    """Passes ``allowed`` requests to the app, then behaves as a dead network."""

    def __init__(self, app: FastAPI, allowed: int) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.allowed = allowed
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls > self.allowed:
            raise httpx.ConnectError("connection refused")
        return await self._inner.handle_async_request(request)


class HangsAfterSending(httpx.AsyncBaseTransport):
    """Request number ``hang_at`` reaches the app, but its answer never comes back."""

    def __init__(self, app: FastAPI, hang_at: int) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.hang_at = hang_at
        self.calls = 0
        self.hanging = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        response = await self._inner.handle_async_request(request)
        if self.calls == self.hang_at:
            self.hanging.set()
            await asyncio.Event().wait()  # the answer is lost in flight
        return response


def client_for(transport: httpx.AsyncBaseTransport, spool_dir: Path) -> RelayClient:
    return RelayClient(
        "http://relay",
        api_key=ACME_KEY,
        transport=transport,
        retries=RetryPolicy(attempts=1),
        spool_dir=spool_dir,
    )


async def test_results_spooled_while_the_service_is_down_arrive_exactly_once(
    relay: RelayClient,
    spool_dir: Path,
    hook: EmulatedWebhook,
    emulator: DiscordEmulator,
    worker: Worker,
) -> None:
    # given fifty results submitted while nothing listens on the service's port
    await spool_results(spool_dir, hook)
    assert len(Spool(spool_dir).pending()) == COUNT
    # when the service is back and one flush runs
    report = await relay.flush_spool()
    # then all fifty are accepted, the spool is empty, and Discord gets each exactly once
    assert (report.accepted, report.duplicate, report.remaining) == (COUNT, 0, 0)
    assert Spool(spool_dir).pending() == []
    await worker.drain()
    assert delivered_ids(emulator, hook) == Counter({f"wf_{n:03}": 1 for n in range(COUNT)})


async def test_a_flush_cut_off_midway_loses_nothing_and_the_next_completes(
    app: FastAPI,
    relay: RelayClient,
    spool_dir: Path,
    hook: EmulatedWebhook,
    emulator: DiscordEmulator,
    worker: Worker,
) -> None:
    # given a spool of fifty, and a network that dies after twenty requests
    await spool_results(spool_dir, hook)
    async with client_for(FailingAfter(app, allowed=20), spool_dir) as flaky:
        first = await flaky.flush_spool()
    # then the first flush sent twenty and kept the rest
    assert (first.accepted, first.remaining) == (20, COUNT - 20)
    assert first.error is not None and "unavailable" in first.error
    assert len(Spool(spool_dir).pending()) == COUNT - 20
    # when a second flush runs on a working network
    second = await relay.flush_spool()
    assert (second.accepted, second.remaining) == (COUNT - 20, 0)
    await worker.drain()
    assert delivered_ids(emulator, hook) == Counter({f"wf_{n:03}": 1 for n in range(COUNT)})


async def test_killing_the_flusher_after_the_service_took_a_file_still_sends_it_once(
    app: FastAPI,
    relay: RelayClient,
    spool_dir: Path,
    hook: EmulatedWebhook,
    emulator: DiscordEmulator,
    worker: Worker,
) -> None:
    # given a background flusher whose 11th answer is lost after the service committed it
    await spool_results(spool_dir, hook)
    transport = HangsAfterSending(app, hang_at=11)
    async with client_for(transport, spool_dir) as bot:
        bot.start_spool_flusher(interval=60)
        await asyncio.wait_for(transport.hanging.wait(), 10)
        # when the flusher task is killed right there
        await bot.stop_spool_flusher()
    # then the file the service already has is still in the spool, with all the unsent ones
    assert len(Spool(spool_dir).pending()) == COUNT - 10
    # and the next flush resends it (a duplicate for the service) and completes
    report = await relay.flush_spool()
    assert (report.accepted, report.duplicate, report.remaining) == (COUNT - 11, 1, 0)
    await worker.drain()
    assert delivered_ids(emulator, hook) == Counter({f"wf_{n:03}": 1 for n in range(COUNT)})
    assert len([i async for i in relay.list_results(page_size=200)]) == COUNT


async def test_refused_submissions_move_to_rejected_with_the_error(
    relay: RelayClient, spool_dir: Path, hook: EmulatedWebhook
) -> None:
    # given a spooled result whose id the service meanwhile holds with another body,
    # and one the service will find invalid
    async with down_client(spool_dir) as down:
        await down.submit_result(workflow_id="wf_taken", results={"v": 2}, destination=hook.url)
        await down.submit_result(workflow_id="bad id", results={}, destination=hook.url)
        await down.submit_result(workflow_id="wf_fine", results={}, destination=hook.url)
    await relay.submit_result(workflow_id="wf_taken", results={"v": 1}, destination=hook.url)
    # when flushed
    report = await relay.flush_spool()
    # then both refusals are set aside with their reasons, the good one is sent
    assert (report.accepted, report.rejected, report.remaining) == (1, 2, 0)
    rejected = {
        json.loads(p.read_text())["body"]["workflow_id"]: json.loads(p.read_text())["rejection"]
        for p in (spool_dir / "rejected").iterdir()
    }
    assert rejected["wf_taken"]["code"] == "workflow_id_conflict"
    assert rejected["bad id"]["code"] == "invalid_workflow_id"
    assert rejected["bad id"]["details"][0]["field"] == "workflow_id"
    assert Spool(spool_dir).pending() == []


async def test_corrupt_and_foreign_files_are_set_aside_and_the_flush_goes_on(
    relay: RelayClient, spool_dir: Path, hook: EmulatedWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    # given a spool holding a good file, a truncated one, a stranger's file and binary junk
    await spool_results(spool_dir, hook, count=1)
    (spool_dir / "wf_x.0000.json").write_text('{"version": 1, "kind": "result_sub')
    (spool_dir / "notes.txt").write_text("remember the milk")
    (spool_dir / "junk.json").write_bytes(b"\xff\xfe\x00")
    (spool_dir / "other.json").write_text(json.dumps({"version": 1, "kind": "something_else"}))
    # when flushed
    report = await relay.flush_spool()
    # then the good one is sent and the four others wait in corrupt/, reported
    assert (report.accepted, report.corrupt, report.remaining) == (1, 4, 0)
    assert sorted(p.name for p in (spool_dir / "corrupt").iterdir()) == [
        "junk.json",
        "notes.txt",
        "other.json",
        "wf_x.0000.json",
    ]
    assert caplog.text.count("moved to corrupt/") == 4


async def test_spool_files_are_private_and_written_whole(
    spool_dir: Path, hook: EmulatedWebhook
) -> None:
    await spool_results(spool_dir, hook, count=2)
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
    files = sorted(spool_dir.iterdir())
    assert len(files) == 2  # no temporary file left behind
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["body"]["destination"]["webhook_url"] == hook.url


async def test_the_same_submission_spooled_twice_is_one_file(
    spool_dir: Path, hook: EmulatedWebhook
) -> None:
    async with down_client(spool_dir) as down:
        for _ in range(2):
            await down.submit_result(workflow_id="wf_1", results={"a": 1}, destination=hook.url)
        await down.submit_result(workflow_id="wf_1", results={"a": 2}, destination=hook.url)
    assert len(Spool(spool_dir).pending()) == 2  # the different body is kept too


async def test_a_flush_against_a_stopped_service_keeps_everything(
    spool_dir: Path, hook: EmulatedWebhook
) -> None:
    await spool_results(spool_dir, hook, count=3)
    async with down_client(spool_dir) as down:
        report = await down.flush_spool()
    assert (report.sent, report.remaining) == (0, 3)
    assert len(Spool(spool_dir).pending()) == 3


async def test_without_a_spool_an_unreachable_service_raises(hook: EmulatedWebhook) -> None:
    async with RelayClient(
        f"http://127.0.0.1:{free_port()}", api_key=ACME_KEY, retries=FAST_RETRY
    ) as relay:
        with pytest.raises(RelayUnavailable):
            await relay.submit_result(workflow_id="wf_1", results={}, destination=hook.url)


async def test_a_spool_write_failure_is_a_spool_error(
    spool_dir: Path, hook: EmulatedWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: Spool, body: dict[str, Any]) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "write", disk_full)
    with pytest.raises(SpoolError) as caught:
        await spool_results(spool_dir, hook, count=1)
    assert "No space left" in str(caught.value)


async def test_the_background_flusher_sends_what_was_spooled(
    relay: RelayClient, spool_dir: Path, hook: EmulatedWebhook
) -> None:
    await spool_results(spool_dir, hook, count=3)
    async with relay.spool_flusher(interval=0.01):
        for _ in range(500):
            if not Spool(spool_dir).pending():
                break
            await asyncio.sleep(0.01)
    assert Spool(spool_dir).pending() == []
    assert len([i async for i in relay.list_results()]) == 3


async def test_the_background_flusher_survives_a_failing_flush(
    relay: RelayClient, spool_dir: Path, hook: EmulatedWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_flush = RelayClient.flush_spool

    async def sometimes_broken(self: RelayClient) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk gone for a moment")
        return await real_flush(self)

    monkeypatch.setattr(RelayClient, "flush_spool", sometimes_broken)
    await spool_results(spool_dir, hook, count=1)
    async with relay.spool_flusher(interval=0.01):
        for _ in range(500):
            if not Spool(spool_dir).pending():
                break
            await asyncio.sleep(0.01)
    assert calls >= 2 and Spool(spool_dir).pending() == []
