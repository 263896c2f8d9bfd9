"""Retention: settled results older than RELAY_RETENTION_DAYS go; pending ones never do."""

from __future__ import annotations

import asyncio

from service.metrics import Metrics
from service.retention import DAY, purge_once, purge_periodically
from service.store import Store
from tests.integration.test_store_contract import T0, deliver, new


async def test_purge_counts_what_it_removed(store: Store) -> None:
    await store.accept(new("old"), now=T0)
    await store.accept(new("young"), now=T0 + 20 * DAY)
    await store.accept(new("old-pending"), now=T0)
    for wf in ("old", "young"):
        await deliver(store, wf, T0 + 1)
    metrics = Metrics()
    removed = await purge_once(store, retention_days=30, now=T0 + 31 * DAY, metrics=metrics)
    assert removed == 1
    assert await store.get_result("acme", "old") is None
    assert await store.get_result("acme", "young") is not None
    assert await store.get_result("acme", "old-pending") is not None
    assert metrics.registry.get_sample_value("relay_results_purged_total") == 1


async def test_periodic_purge_runs_at_start_and_again(store: Store) -> None:
    await store.accept(new("old"), now=T0)
    await store.orphan("acme", "old", reason="x", now=T0)
    now = [T0 + 31 * DAY]
    task = asyncio.create_task(
        purge_periodically(
            store, retention_days=30, interval=0.01, clock=lambda: now[0], metrics=Metrics()
        )
    )
    try:
        for _ in range(200):
            if await store.get_result("acme", "old") is None:
                break
            await asyncio.sleep(0.01)
        assert await store.get_result("acme", "old") is None
        await store.accept(new("later"), now=now[0])
        await store.orphan("acme", "later", reason="x", now=now[0])
        now[0] += 31 * DAY
        for _ in range(200):
            if await store.get_result("acme", "later") is None:
                break
            await asyncio.sleep(0.01)
        assert await store.get_result("acme", "later") is None
    finally:
        task.cancel()
