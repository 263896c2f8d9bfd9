"""When to try again and how long to wait first, as values: which answers are worth a retry,
exponential backoff with full jitter, and ``Retry-After``."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from bot_client._exceptions import APIError, RelayError, RelayUnavailable

# Error answers that may succeed if the very same request comes again; every 5xx as well
# (the service's own and a proxy's: 502/504 pages, Cloudflare's 520-524). The rest (400, 401,
# 403, 404, 409, 413, 422...) are answers about this request or this key: never retried.
RETRYABLE_4XX = frozenset(
    {
        408,  # Request Timeout: the server gave up waiting for the body
        425,  # Too Early: replayed early data, send again later
        429,  # Too Many Requests: wait (Retry-After) and send again
    }
)
RATE_LIMITED = 429


def retryable_status(status: int) -> bool:
    """Whether an error answer with ``status`` is worth the same request again."""
    return status in RETRYABLE_4XX or 500 <= status <= 599


def transient(exc: RelayError) -> bool:
    """An error that may pass if the same request comes later: spool it, do not raise."""
    if isinstance(exc, RelayUnavailable):
        return True
    return (
        isinstance(exc, APIError)
        and exc.status_code is not None
        and retryable_status(exc.status_code)
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all (1 means no retry); before try n+1 wait a random time in
    ``[0, min(cap, base * 2**n))``. A ``Retry-After`` from the service raises the wait, up to
    ``cap``; on a 429 up to ``max_retry_after`` instead, since the service means it. A 429
    asking for more than ``max_retry_after`` is not waited for at all: the call gives up at
    once (``submit`` spools, and the spool flusher sends it later)."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy.base, cap and max_retry_after must not be negative")

    def delay(
        self,
        failed_attempts: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
        rate_limited: bool = False,
    ) -> float:
        """Seconds to wait after ``failed_attempts`` (1 or more) tries have failed."""
        ceiling = min(self.cap, self.base * 2 ** (failed_attempts - 1))
        wait = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            limit = max(self.cap, self.max_retry_after) if rate_limited else self.cap
            wait = max(wait, min(retry_after, limit))
        return wait

    def waits_for(self, retry_after: float | None, *, rate_limited: bool) -> bool:
        """False when a 429 asks for a longer pause than this policy blocks a caller for."""
        if not rate_limited or retry_after is None:
            return True
        return retry_after <= max(self.cap, self.max_retry_after)


NO_RETRY = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: the delta form, or an HTTP date (seconds from ``now``, the
    current time by default; a date in the past is 0). Anything else is ignored (None)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
