"""How long to wait before the next try: exponential backoff with full jitter, as values."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all (1 means no retry); before try n+1 wait a random time in
    ``[0, min(cap, base * 2**n))``. A ``Retry-After`` from the service raises the wait, up to
    ``cap``."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("RetryPolicy.base and cap must not be negative")

    def delay(
        self,
        failed_attempts: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after ``failed_attempts`` (1 or more) tries have failed."""
        ceiling = min(self.cap, self.base * 2 ** (failed_attempts - 1))
        wait = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


NO_RETRY = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
