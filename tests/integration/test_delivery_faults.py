"""The worker under faults: a failing store, a lying tenant, a crash, a route that gives way.

Each test names a failure that used to resend, spin or stall, and asserts on what Discord
received and what the store holds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.delivery.worker import Worker
from service.domain import Route
from service.errors import StoreError
from service.store import Store
from service.store.sqlite import SQLiteStore
from service.testing import DiscordEmulator
from tests.conftest import Clock
from tests.support import ACME, CIPHER, OTHER, USER_ID, submission

from .test_delivery import attempts, fetch, submit, to


class FlakyStore:
    """A real store whose chosen methods fail (``StoreError``) the next ``n`` times."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.failures: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def fail(self, method: str, times: int) -> None:
        self.failures[method] = times

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                raise StoreError("the database could not commit")
            return await target(*args, **kwargs)

        return call


@pytest.fixture
async def flaky(
    settings: Settings, tmp_path: Path, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[tuple[FlakyStore, FastAPI]]:
    store = FlakyStore(SQLiteStore(str(tmp_path / "flaky.db"), cipher=CIPHER))
    app = create_app(
        settings,
        store=store,  # type: ignore[arg-type]
        clock=clock,
        background=False,
        discord_transport=httpx.ASGITransport(app=emulator.app),
    )
    async with app.router.lifespan_context(app):
        yield store, app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay")


def _worker(app: FastAPI) -> Worker:
    worker: Worker = app.state.services.worker
    return worker


async def test_a_commit_that_fails_after_a_send_never_posts_the_part_again(
    flaky: tuple[FlakyStore, FastAPI], emulator: DiscordEmulator
) -> None:
    # given a result, and a store that refuses the next commits after Discord took the message
    store, app = flaky
    hook = emulator.create_webhook()
    async with _client(app) as client:
        await submit(client, to(hook, "wf_disk"))
        store.fail("record_delivery", 4)
        # when the worker delivers it
        await _worker(app).drain(limit_seconds=20)
        # then Discord holds one message, and the store its id, once the commit went through
        [message] = emulator.messages(hook.id)
        record = await fetch(client, "wf_disk")
    assert record["status"] == "delivered"
    assert record["messages"][0]["message_id"] == message.id
    assert store.calls["record_delivery"] == 5  # four refusals, then the commit
    assert emulator.counters.total_requests == 1


async def test_claiming_backs_off_while_the_store_fails(
    flaky: tuple[FlakyStore, FastAPI], emulator: DiscordEmulator
) -> None:
    # given pending work, and a store whose reads of a lane keep failing
    store, app = flaky
    hook = emulator.create_webhook()
    async with _client(app) as client:
        await submit(client, to(hook, "wf_down"))
    store.fail("due_results", 10_000)
    worker = _worker(app)
    # when the worker runs for a second
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(1.0)
    await worker.stop()
    await running
    # then it claimed the lane a handful of times, not thousands, and sent nothing
    assert 1 <= store.calls["claim_lane"] <= 12
    assert emulator.counters.total_requests == 0


async def test_drain_honours_its_limit(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    emulator.inject_fault("hang", webhook_id=hook.id, seconds=5)
    await submit(client, to(hook, "wf_slow"))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await worker.drain(limit_seconds=0.3)
    assert time.monotonic() - started < 2.0
    await worker.stop(grace_seconds=0)


async def test_a_made_up_token_kills_the_webhook_for_that_token_only(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given acme's real webhook, and another tenant who knows its id but not its token
    hook = emulator.create_webhook()
    forged_url = hook.url.rsplit("/", 1)[0] + "/" + "f" * 68
    forged = submission("wf_forged", destination={"webhook_url": forged_url})
    assert (await client.post("/v1/results", json=forged, headers=OTHER)).status_code == 202
    await submit(client, to(hook, "wf_real_1"))
    # when the worker delivers both
    await worker.drain()
    # then the forged token is dead, and acme's results still arrive, now and later
    gone = (await client.get("/v1/results/wf_forged", headers=OTHER)).json()
    assert (gone["status"], gone["retrieval_info"]["reason"]) == (
        "orphaned",
        "webhook_unauthorized",
    )
    assert (await fetch(client, "wf_real_1"))["status"] == "delivered"
    await submit(client, to(hook, "wf_real_2"))
    await worker.drain()
    assert (await fetch(client, "wf_real_2"))["status"] == "delivered"
    assert len(emulator.messages(hook.id)) == 2


async def test_registering_the_webhook_again_revives_a_token_marked_dead(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, services: Any
) -> None:
    # given a token Discord once refused, so the service marked it dead
    hook = emulator.create_webhook()
    await services.store.kill_webhook(hook.id, hook.token, reason="webhook_unauthorized", now=1.0)
    early = await submit(client, to(hook, "wf_early"))
    assert early["status"] == "orphaned"
    # when the owner registers it and Discord's Get Webhook takes the token
    put = await client.put("/v1/destinations/ops", json={"webhook_url": hook.url}, headers=ACME)
    assert put.status_code == 201
    # then new results for it are delivered, and the early one can be redelivered
    await submit(client, to(hook, "wf_after"))
    assert (await client.post("/v1/results/wf_early/redeliver", headers=ACME)).status_code == 202
    await worker.drain()
    assert (await fetch(client, "wf_after"))["status"] == "delivered"
    assert (await fetch(client, "wf_early"))["status"] == "delivered"


async def test_redelivering_with_a_token_that_works_again_revives_it(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, services: Any
) -> None:
    hook = emulator.create_webhook()
    await submit(client, to(hook, "wf_back"))
    await services.store.kill_webhook(hook.id, hook.token, reason="webhook_unauthorized", now=1.0)
    assert (await fetch(client, "wf_back"))["status"] == "orphaned"
    again = await client.post("/v1/results/wf_back/redeliver", headers=ACME)
    assert again.status_code == 202
    await worker.drain()
    assert (await fetch(client, "wf_back"))["status"] == "delivered"
    assert await services.store.dead_reason(hook.id, hook.token) is None


async def test_a_part_left_in_flight_by_a_crash_is_an_ambiguous_attempt(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, services: Any
) -> None:
    # given a result whose first part a process marked in flight, then died without an answer
    hook = emulator.create_webhook()
    await submit(client, to(hook, "wf_crash"))
    await services.store.mark_in_flight("acme", "wf_crash", part=0, route=Route.WEBHOOK, now=1.0)
    # when a worker takes the lane over
    await worker.drain()
    # then the part is sent again, and the possible duplicate is on record
    history = await attempts(client, "wf_crash")
    assert [(a["outcome"], a["counted"]) for a in history] == [
        ("ambiguous", True),
        ("delivered", False),
    ]
    assert history[0]["error"].startswith("interrupted")
    assert (await fetch(client, "wf_crash"))["status"] == "delivered"
    text = (await client.get("/metrics")).text
    assert "relay_ambiguous_attempts_total 1.0" in text
    assert len(emulator.messages(hook.id)) == 1


class RefuseFollowUpsAfter(httpx.AsyncBaseTransport):
    """Discord, except that interaction follow-ups after the first ``n`` answer 401 / 50027."""

    def __init__(self, inner: httpx.AsyncBaseTransport, application_id: str, n: int) -> None:
        self._inner, self._application_id, self._left = inner, application_id, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if f"/webhooks/{self._application_id}/" in request.url.path:
            if self._left == 0:
                body = {"message": "Invalid Webhook Token", "code": 50027}
                return httpx.Response(401, json=body, request=request)
            self._left -= 1
        return await self._inner.handle_async_request(request)


async def test_switching_route_mid_result_neither_repeats_nor_drops_a_line(
    settings: Settings, clock: Clock, emulator: DiscordEmulator
) -> None:
    # given a long result for a live interaction, whose token Discord refuses after one part
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=60)
    transport = RefuseFollowUpsAfter(
        httpx.ASGITransport(app=emulator.app), interaction.application_id, 1
    )
    app = create_app(settings, clock=clock, background=False, discord_transport=transport)
    lines = [f"line {i:04d} " + "x" * 60 for i in range(120)]
    body = to(
        hook,
        "wf_switch",
        interaction={
            "application_id": interaction.application_id,
            "interaction_id": interaction.interaction_id,
            "token": interaction.token,
        },
        message={"content": "\n".join(lines)},
    )
    async with app.router.lifespan_context(app), _client(app) as client:
        await submit(client, body)
        # when the worker delivers it
        await _worker(app).drain()
        record = await fetch(client, "wf_switch")
        history = await attempts(client, "wf_switch")
    # then the first part went as a follow-up, the rest through the webhook, in order
    followups = emulator.followups(interaction.interaction_id)
    channel = emulator.messages(hook.id)
    assert len(followups) == 1 and len(channel) >= 1
    assert record["status"] == "delivered"
    assert [a["outcome"] for a in history].count("fallback") == 1
    text = "\n".join(m.content or "" for m in [*followups, *channel])
    # every line exactly once, in order, and the requester mentioned exactly once
    assert re.findall(r"line \d{4}", text) == [line[:9] for line in lines]
    assert text.count(f"<@{USER_ID}>") == 1
