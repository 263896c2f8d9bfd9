"""Retention: remove delivered and orphaned results older than ``RELAY_RETENTION_DAYS``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from service.errors import StoreError
from service.metrics import Metrics
from service.store import Store

log = logging.getLogger(__name__)
DAY = 86400.0


async def purge_once(store: Store, *, retention_days: float, now: float, metrics: Metrics) -> int:
    removed = await store.purge(before=now - retention_days * DAY)
    metrics.results_purged.inc(removed)
    if removed:
        log.info("purged results", extra={"removed": removed, "retention_days": retention_days})
    return removed


async def purge_periodically(
    store: Store,
    *,
    retention_days: float,
    interval: float,
    clock: Callable[[], float],
    metrics: Metrics,
) -> None:
    """Purge at start, then every ``interval`` seconds; a failed round is logged and retried."""
    while True:
        try:
            await purge_once(store, retention_days=retention_days, now=clock(), metrics=metrics)
        except StoreError:
            log.warning("purge failed; will try again", exc_info=True)
        await asyncio.sleep(interval)
