"""A real full filesystem: the SQLite database on a small tmpfs that fills up mid-delivery.

Discord takes the message while the disk fills; the commit of its id then fails until space is
freed. The part must not be posted again meanwhile. Needs root (to mount the tmpfs); skipped with
the reason elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.config import load_settings
from service.delivery.worker import Worker
from service.testing import DiscordEmulator
from tests.support import API_KEYS, SECRET_KEY, mounted_tmpfs

from .test_delivery import fetch, submit, to


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "size=4m") as mount:
        yield mount


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as full:
        path.with_name("probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC


async def test_a_full_disk_after_the_send_never_posts_the_part_again(small_disk: Path) -> None:
    # given a service on a small disk, and Discord slow to answer one message
    emulator = DiscordEmulator()
    settings = load_settings(
        database_url=f"sqlite:///{small_disk}/relay.db", api_keys=API_KEYS, secret_key=SECRET_KEY
    )
    app = create_app(
        settings, background=False, discord_transport=httpx.ASGITransport(app=emulator.app)
    )
    hook = emulator.create_webhook()
    emulator.inject_fault("hang_after_store", webhook_id=hook.id, seconds=0.5)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            await submit(client, to(hook, "wf_full"))
            worker: Worker = app.state.services.worker
            drain = asyncio.create_task(worker.drain(limit_seconds=30))
            while not emulator.messages(hook.id):
                await asyncio.sleep(0.01)
            # when the disk fills while Discord holds the answer back
            fill(small_disk / "filler")
            await asyncio.sleep(2.0)
            stalled = await fetch(client, "wf_full")
            # and then space comes back
            (small_disk / "filler").unlink()
            await drain
            record = await fetch(client, "wf_full")
    # then the message was posted once, and its id is stored once the disk allowed
    assert stalled["status"] == "pending"
    [message] = emulator.messages(hook.id)
    assert emulator.counters.total_requests == 1
    assert record["status"] == "delivered"
    assert record["messages"][0]["message_id"] == message.id


async def _readiness(client: httpx.AsyncClient) -> tuple[int, str]:
    response = await client.get("/readyz")
    return response.status_code, response.json()["checks"]["store"]


async def test_readiness_is_503_while_the_disk_is_full_and_recovers(small_disk: Path) -> None:
    # given a ready service on a small disk holding a result
    emulator = DiscordEmulator()
    settings = load_settings(
        database_url=f"sqlite:///{small_disk}/relay.db", api_keys=API_KEYS, secret_key=SECRET_KEY
    )
    app = create_app(
        settings, background=False, discord_transport=httpx.ASGITransport(app=emulator.app)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            await submit(client, to(emulator.create_webhook(), "wf_before"))
            assert await _readiness(client) == (200, "ok")
            # when the disk fills up
            fill(small_disk / "filler")
            full = await _readiness(client)
            still_readable = await fetch(client, "wf_before")
            # and space comes back
            (small_disk / "filler").unlink()
            recovered = await _readiness(client)
    # then readiness said so while reads kept working, and is ready again after
    assert full == (503, "read_only")
    assert still_readable["workflow_id"] == "wf_before"
    assert recovered == (200, "ok")
