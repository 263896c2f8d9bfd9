"""Discord's three rate limits as pure fixed-window math over an injected clock.

- per route bucket (webhook id + route), announced in X-RateLimit-* headers;
- hidden per channel limit on created messages, answered as a `shared` 429;
- global limit over channel-webhook calls (interaction follow-ups are exempt);
- for bot tokens: per route buckets keyed by (bot, route, channel id), each bot's own global
  limit, and the cap on opening new DMs (a plain count; Discord answers it with 40003).

The limiter also remembers what it announced (a `retry_after`, a bucket at Remaining 0) so it can
tell when a client comes back too early: that is the `premature_requests` counter.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["user", "shared", "global"]
Limit = tuple[int, float]
LIMIT_NAMES = ("webhook", "channel", "global", "bot_route", "bot_global", "dm_open")
DEFAULT_BOT_ROUTE: Limit = (5, 5.0)
DEFAULT_BOT_GLOBAL: Limit = (50, 1.0)
DEFAULT_DM_OPEN: Limit = (10, 10.0)


def ceil_ms(seconds: float) -> float:
    """Round up to the millisecond: waiting the announced time must always be enough."""
    return math.ceil(max(seconds, 0.0) * 1000 - 1e-6) / 1000


@dataclass
class FixedWindow:
    """`limit` requests per `per` seconds; the window opens with its first request."""

    limit: int
    per: float
    used: int = 0
    resets_at: float = 0.0

    def _roll(self, now: float) -> None:
        if now >= self.resets_at:
            self.used = 0
            self.resets_at = now + self.per

    def remaining(self, now: float) -> int:
        self._roll(now)
        return max(self.limit - self.used, 0)

    def reset_after(self, now: float) -> float:
        self._roll(now)
        return self.resets_at - now

    def take(self, now: float) -> None:
        self._roll(now)
        self.used += 1


@dataclass(frozen=True)
class Verdict:
    """The outcome for one request: headers to send and, when refused, the 429 details."""

    headers: dict[str, str] = field(default_factory=dict)
    scope: Scope | None = None
    retry_after: float = 0.0
    premature: bool = False

    @property
    def limited(self) -> bool:
        return self.scope is not None


def bucket_hash(route: str) -> str:
    # Opaque, and the same string for the same route on every webhook, as on Discord.
    return hashlib.sha256(f"emulator:{route}".encode()).hexdigest()[:32]


class RateLimiter:
    """All rate-limit state of one emulator. Thread-safe: uvicorn may serve from another thread."""

    def __init__(
        self,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        *,
        webhook: Limit,
        channel: Limit,
        global_: Limit,
        bot_route: Limit = DEFAULT_BOT_ROUTE,
        bot_global: Limit = DEFAULT_BOT_GLOBAL,
        dm_open: Limit = DEFAULT_DM_OPEN,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._limits: dict[str, Limit] = {
            "webhook": webhook,
            "channel": channel,
            "global": global_,
            "bot_route": bot_route,
            "bot_global": bot_global,
            "dm_open": dm_open,
        }
        self._buckets: dict[Hashable, FixedWindow] = {}
        self._channels: dict[Hashable, FixedWindow] = {}
        self._global = FixedWindow(*global_)
        self._bot_globals: dict[str, FixedWindow] = {}
        self._dm_opens: dict[str, FixedWindow] = {}
        self._announced: dict[Hashable, float] = {}  # key -> clock time before which is early

    @property
    def limits(self) -> dict[str, Limit]:
        with self._lock:
            return dict(self._limits)

    def set_limits(self, changes: dict[str, Limit | None]) -> None:
        """Changes limits (keys from `LIMIT_NAMES`); every window starts afresh so the new
        numbers apply at once."""
        with self._lock:
            for name, value in changes.items():
                if name not in LIMIT_NAMES:
                    raise ValueError(f"unknown limit {name!r}; expected one of {LIMIT_NAMES}")
                if value is not None:
                    count, per = value
                    if count < 1 or per <= 0:
                        raise ValueError(f"{name} limit must be at least 1 per positive period")
                    self._limits[name] = (int(count), float(per))
            self._buckets.clear()
            self._channels.clear()
            self._global = FixedWindow(*self._limits["global"])
            self._bot_globals.clear()
            self._dm_opens.clear()
            self._announced.clear()

    def _early(self, now: float, *keys: Hashable) -> bool:
        return any(now < self._announced.get(key, -math.inf) for key in keys)

    def _announce(self, key: Hashable, until: float) -> None:
        self._announced[key] = max(self._announced.get(key, -math.inf), until)

    def acquire_route(
        self, *, bucket: tuple[str, str], lane: Hashable, counts_global: bool
    ) -> Verdict:
        """Takes one request from the global window and the route bucket, or refuses with 429."""
        with self._lock:
            now = self._clock()
            gkey = ("global",)
            premature = self._early(now, bucket, ("lane", lane), *([gkey] if counts_global else []))
            if counts_global and self._global.remaining(now) == 0:
                retry = self._global.reset_after(now)
                self._announce(gkey, now + retry)
                headers = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
                return Verdict(headers, "global", ceil_ms(retry), premature)
            window = self._buckets.get(bucket)
            if window is None:
                window = self._buckets[bucket] = FixedWindow(*self._limits["webhook"])
            if window.remaining(now) == 0:
                retry = window.reset_after(now)
                self._announce(bucket, now + retry)
                headers = self._headers(window, now, bucket[1])
                headers["X-RateLimit-Scope"] = "user"
                return Verdict(headers, "user", ceil_ms(retry), premature)
            if counts_global:
                self._global.take(now)
            window.take(now)
            if window.remaining(now) == 0:
                self._announce(bucket, window.resets_at)
            return Verdict(self._headers(window, now, bucket[1]), premature=premature)

    def acquire_bot(self, *, bot_id: str, route: str, major: str) -> Verdict:
        """One bot-token request: the bot's own global window, then the bucket of (bot, route,
        major parameter), or a 429. Buckets of the same route share one `X-RateLimit-Bucket`."""
        with self._lock:
            now = self._clock()
            bucket = ("bot", bot_id, route, major)
            gkey = ("bot-global", bot_id)
            premature = self._early(now, bucket, gkey)
            global_window = self._bot_globals.get(bot_id)
            if global_window is None:
                global_window = self._bot_globals[bot_id] = FixedWindow(*self._limits["bot_global"])
            if global_window.remaining(now) == 0:
                retry = global_window.reset_after(now)
                self._announce(gkey, now + retry)
                headers = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
                return Verdict(headers, "global", ceil_ms(retry), premature)
            window = self._buckets.get(bucket)
            if window is None:
                window = self._buckets[bucket] = FixedWindow(*self._limits["bot_route"])
            name = f"bot:{route}"
            if window.remaining(now) == 0:
                retry = window.reset_after(now)
                self._announce(bucket, now + retry)
                headers = self._headers(window, now, name)
                headers["X-RateLimit-Scope"] = "user"
                return Verdict(headers, "user", ceil_ms(retry), premature)
            global_window.take(now)
            window.take(now)
            if window.remaining(now) == 0:
                self._announce(bucket, window.resets_at)
            return Verdict(self._headers(window, now, name), premature=premature)

    def open_dm(self, bot_id: str) -> bool:
        """Counts one new DM opened by `bot_id`; False when over the limit (Discord's 40003,
        which announces no retry time)."""
        with self._lock:
            now = self._clock()
            window = self._dm_opens.get(bot_id)
            if window is None:
                window = self._dm_opens[bot_id] = FixedWindow(*self._limits["dm_open"])
            if window.remaining(now) == 0:
                return False
            window.take(now)
            return True

    def acquire_channel(self, *, channel: Hashable, lane: Hashable) -> float | None:
        """Counts one created message in `channel`; returns a retry_after when over the limit."""
        with self._lock:
            now = self._clock()
            window = self._channels.get(channel)
            if window is None:
                window = self._channels[channel] = FixedWindow(*self._limits["channel"])
            if window.remaining(now) == 0:
                retry = window.reset_after(now)
                self._announce(("lane", lane), now + retry)
                return ceil_ms(retry)
            window.take(now)
            return None

    def _headers(self, window: FixedWindow, now: float, route: str) -> dict[str, str]:
        reset_after = ceil_ms(window.reset_after(now))
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(window.remaining(now)),
            "X-RateLimit-Reset": f"{self._wall_clock() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket_hash(route),
        }
