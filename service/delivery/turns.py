"""Whose request goes next when several wait for one bucket or for the global budget.

Results and progress edits share a webhook's limit and the process's budget. A result is what the
user waits for; a progress edit only replaces the one before it (the next carries the latest
state), so a result waiting for a turn goes before every progress edit waiting with it. Within one
priority, first come, first served.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator
from enum import IntEnum


class Priority(IntEnum):
    RESULT = 0
    PROGRESS = 1


class PriorityLock:
    """An asyncio lock handed on at release to the waiter of the highest priority (the lowest
    value), then the earliest."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    def locked(self) -> bool:
        return self._held

    @contextlib.asynccontextmanager
    async def hold(self, priority: Priority) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, priority: Priority) -> None:
        if not self._held:
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed the lock in the same moment: pass it on
            raise

    def release(self) -> None:
        # Handed over directly, never left free in between: a newcomer cannot jump the queue.
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():  # a cancelled waiter left its future done
                waiter.set_result(None)
                return
        self._held = False
