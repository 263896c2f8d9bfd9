"""Rate-limit arithmetic over Discord's headers and a clock: no I/O, no sleeping.

The worker keeps one :class:`Bucket` per lane and one :class:`TokenBucket` for the process-wide
budget, asks them how long to wait before each request, and tells them what each response said.
Times are monotonic seconds supplied by the caller.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Discord's reset times are rounded and our clock started after theirs: a small margin keeps a
# request from arriving a hair before the bucket has refilled.
SAFETY_MARGIN = 0.05
# A Cloudflare block says nothing about its length; Discord documents about an hour for bans.
CLOUDFLARE_PAUSE = 300.0


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one response said about rate limits."""

    remaining: int | None = None
    reset_after: float | None = None
    bucket: str | None = None
    retry_after: float | None = None  # set on 429s only
    scope: str | None = None  # user | global | shared | cloudflare
    is_global: bool = False

    @property
    def limited(self) -> bool:
        return self.retry_after is not None


def parse_rate_limit(status: int, headers: Mapping[str, str], body: Any) -> RateLimitInfo:
    """Read Discord's ``X-RateLimit-*`` headers, and on a 429 its body and ``Retry-After``.

    A 429 without any ``X-RateLimit-*`` header and without Discord's JSON body is Cloudflare
    blocking the address, not Discord's limiter.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    remaining = _int(lowered.get("x-ratelimit-remaining"))
    reset_after = _float(lowered.get("x-ratelimit-reset-after"))
    bucket = lowered.get("x-ratelimit-bucket")
    if status != 429:
        return RateLimitInfo(remaining=remaining, reset_after=reset_after, bucket=bucket)
    discord_body = isinstance(body, dict) and "retry_after" in body
    has_headers = any(k.startswith("x-ratelimit-") for k in lowered)
    if not discord_body and not has_headers:
        pause = _float(lowered.get("retry-after"))
        return RateLimitInfo(
            retry_after=max(pause or 0.0, CLOUDFLARE_PAUSE), scope="cloudflare", is_global=True
        )
    retry_after = _float(body.get("retry_after")) if discord_body else None
    if retry_after is None:
        retry_after = _float(lowered.get("retry-after")) or reset_after or 1.0
    is_global = lowered.get("x-ratelimit-global", "").lower() == "true" or bool(
        discord_body and body.get("global")
    )
    scope = lowered.get("x-ratelimit-scope") or ("global" if is_global else "user")
    return RateLimitInfo(
        remaining=remaining,
        reset_after=reset_after,
        bucket=bucket,
        retry_after=max(retry_after, 0.0),
        scope=scope,
        is_global=is_global,
    )


@dataclass(slots=True)
class Bucket:
    """One webhook's (or interaction's) limit, as far as its responses have told us."""

    remaining: int | None = None
    resets_at: float = 0.0
    blocked_until: float = 0.0

    def delay(self, now: float, *, keep: int = 0) -> float:
        """Seconds to wait before the next request may go, leaving ``keep`` requests of the
        current window to others (a progress edit leaves the last one to a result)."""
        wait = self.blocked_until - now
        if self.remaining is not None and self.remaining <= keep:
            wait = max(wait, self.resets_at + SAFETY_MARGIN - now)
        return max(wait, 0.0)

    def spend(self, now: float) -> None:
        """A request is about to go: count it before the answer arrives."""
        if self.remaining is not None:
            if now >= self.resets_at + SAFETY_MARGIN:
                self.remaining = None  # the window we knew has passed; the answer will say more
            else:
                self.remaining -= 1

    def observe(self, info: RateLimitInfo, now: float) -> None:
        if info.remaining is not None and info.reset_after is not None:
            self.remaining = info.remaining
            self.resets_at = now + info.reset_after
        if info.retry_after is not None and not info.is_global:
            self.blocked_until = max(self.blocked_until, now + info.retry_after + SAFETY_MARGIN)


@dataclass(slots=True)
class TokenBucket:
    """A steady request budget (``rate`` per second, bursts up to ``burst``) plus pauses."""

    rate: float
    burst: float
    tokens: float = math.nan
    updated: float = 0.0
    paused_until: float = 0.0
    fleet_rate: float = math.nan  # the rate and burst before any share: the whole fleet's
    fleet_burst: float = math.nan

    def __post_init__(self) -> None:
        self.fleet_rate, self.fleet_burst = self.rate, self.burst

    def take(self, now: float) -> float:
        """Take one token if there is one (and no pause): returns 0. Otherwise take nothing and
        return how long to wait before asking again.

        Nothing is reserved for later: a caller that wakes late (a busy event loop) cannot then
        go out together with the next one, so requests stay spaced however late they leave.
        """
        if math.isnan(self.tokens):
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.paused_until > now:
            return self.paused_until - now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def share(self, rate: float) -> None:
        """Change the rate to a replica's share of the fleet's budget. The burst shrinks in
        proportion (one request at least): the replicas' bursts together stay within the fleet's,
        where three full bursts on top of the rate could exceed Discord's global limit."""
        self.rate = rate
        self.burst = max(1.0, self.fleet_burst * rate / self.fleet_rate)
        self.tokens = min(self.tokens, self.burst)


class InvalidRequestWindow:
    """A rolling count of 401, 403 and non-shared 429 answers over ``window`` seconds.

    Discord bans an address for about an hour after 10,000 of them in 10 minutes. The delay it
    asks for grows from ``slow_from`` and stops traffic near ``stop_at``, far below the ban.
    """

    def __init__(self, window: float = 600.0, slow_from: int = 1000, stop_at: int = 5000) -> None:
        self.window, self.slow_from, self.stop_at = window, slow_from, stop_at
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)

    def count(self, now: float) -> int:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times)

    def delay(self, now: float) -> float:
        count = self.count(now)
        if count < self.slow_from:
            return 0.0
        if count >= self.stop_at:
            return self._times[0] + self.window - now  # until the oldest leaves the window
        return (count - self.slow_from) / (self.stop_at - self.slow_from) * 2.0


def counts_as_invalid(status: int, scope: str | None) -> bool:
    return status in (401, 403) or (status == 429 and scope != "shared")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        result = float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if result is not None and math.isfinite(result) else None
