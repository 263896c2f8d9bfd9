"""PriorityLock: results before progress edits, first come first served within a priority, and
a cancelled waiter never keeps the lock."""

from __future__ import annotations

import asyncio

import pytest

from service.delivery.turns import Priority, PriorityLock


async def test_waiters_go_by_priority_then_arrival() -> None:
    lock = PriorityLock()
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        async with lock.hold(priority):
            order.append(name)

    # given the lock held, and waiters arriving: two progress edits, then two results
    async with lock.hold(Priority.PROGRESS):
        tasks = [
            asyncio.create_task(take(name, priority))
            for name, priority in [
                ("edit-1", Priority.PROGRESS),
                ("edit-2", Priority.PROGRESS),
                ("result-1", Priority.RESULT),
                ("result-2", Priority.RESULT),
            ]
        ]
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    # then the results went first, each class in arrival order
    assert order == ["result-1", "result-2", "edit-1", "edit-2"]
    assert not lock.locked()


async def test_a_cancelled_waiter_is_skipped() -> None:
    lock = PriorityLock()
    got: list[str] = []

    async def take(name: str) -> None:
        async with lock.hold(Priority.RESULT):
            got.append(name)

    async with lock.hold(Priority.RESULT):
        first = asyncio.create_task(take("cancelled"))
        second = asyncio.create_task(take("next"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert got == ["next"] and not lock.locked()


async def test_a_waiter_cancelled_as_it_is_handed_the_lock_passes_it_on() -> None:
    lock = PriorityLock()
    got: list[str] = []

    async def take(name: str) -> None:
        async with lock.hold(Priority.RESULT):
            got.append(name)

    holder = lock.hold(Priority.RESULT)
    await holder.__aenter__()
    first = asyncio.create_task(take("handed-then-cancelled"))
    second = asyncio.create_task(take("next"))
    await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # hands the lock to the first waiter...
    first.cancel()  # ...which is cancelled before it runs
    await second
    assert got == ["next"] and not lock.locked()
