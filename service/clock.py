"""The fleet's time: this process's clock, corrected by the database's.

Replicas on one database compare leases, heartbeats and due times with each other, so they must
agree on the time, and their own clocks may not (one 40 s ahead took every lease early and sent
each result twice). Every comparison therefore uses the database's clock: this process reads it
now and then and keeps the offset. A store on this machine (SQLite) has no clock of its own, and
the offset stays zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class HasDatabaseTime(Protocol):
    async def database_time(self) -> float | None: ...


class DatabaseClock:
    """Call it for the time; :meth:`sync` reads the database's clock and keeps the offset."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self.offset = 0.0

    def __call__(self) -> float:
        return self._local() + self.offset

    async def sync(self, store: HasDatabaseTime) -> None:
        before = self._local()
        remote = await store.database_time()
        after = self._local()
        if remote is not None:
            # The database read its clock somewhere between the two local readings.
            self.offset = remote - (before + after) / 2
