"""Book-keeping of what clients did wrong, read by tests as an `EmulatorCounters` snapshot.

It also holds the Cloudflare ban: 10,000 invalid responses (401, 403, non-shared 429) within ten
minutes ban the client for an hour, and a ban answers every request with the HTML 1015 page.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable

from service.testing.models import EmulatorCounters

INVALID_WINDOW_S = 600.0
BAN_SECONDS = 3600.0
USER_AGENT_PREFIX = "DiscordBot ("
_INT_FIELDS = (
    "total_requests",
    "payload_400s",
    "payload_413s",
    "other_400s",
    "premature_requests",
    "requests_after_404",
    "requests_after_401",
    "bad_allowed_mentions",
    "bad_user_agent",
    "unversioned_requests",
    "cloudflare_bans",
    "edits",
    "nonce_deduplicated",
    "dms_opened",
    "unauthorized",
)


class CounterBook:
    """Mutable counters behind a lock; `snapshot()` hands out immutable copies."""

    def __init__(self, clock: Callable[[], float], *, invalid_request_limit: int) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._invalid_limit = invalid_request_limit
        self._ints: Counter[str] = Counter()
        self._rate_limited: Counter[str] = Counter()
        self._bot_requests: Counter[str] = Counter()
        self._refusals: Counter[str] = Counter()
        self._invalid: deque[float] = deque()
        self._in_flight: Counter[Hashable] = Counter()
        self._max_in_flight = 0
        self._banned_until = float("-inf")
        # Targets that answered 404 / 401 stay remembered across reset_counters(): they are
        # Discord's state, not a counter.
        self._dead_404: set[Hashable] = set()
        self._dead_401: set[Hashable] = set()

    def bump(self, name: str, by: int = 1) -> None:
        if name not in _INT_FIELDS:
            raise KeyError(name)
        with self._lock:
            self._ints[name] += by

    def request(self, *, user_agent: str | None, unversioned: bool) -> None:
        with self._lock:
            self._ints["total_requests"] += 1
            if not (user_agent or "").startswith(USER_AGENT_PREFIX):
                self._ints["bad_user_agent"] += 1
            if unversioned:
                self._ints["unversioned_requests"] += 1

    def bot_request(self, route: str) -> None:
        """One request to a bot-token route, named like `"POST /channels/{channel_id}/messages"`."""
        with self._lock:
            self._bot_requests[route] += 1

    def refused(self, code: int) -> None:
        """One Discord error answer (a JSON body with this `code`)."""
        with self._lock:
            self._refusals[str(code)] += 1

    def enter(self, key: Hashable) -> None:
        with self._lock:
            self._in_flight[key] += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight[key])

    def leave(self, key: Hashable) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def touch_target(self, *keys: Hashable) -> None:
        """Counts a request to a target that already answered 404 or 401."""
        with self._lock:
            if any(k in self._dead_404 for k in keys):
                self._ints["requests_after_404"] += 1
            elif any(k in self._dead_401 for k in keys):
                self._ints["requests_after_401"] += 1

    def mark_dead(self, key: Hashable, status: int) -> None:
        with self._lock:
            (self._dead_404 if status == 404 else self._dead_401).add(key)

    def rate_limited(self, scope: str) -> None:
        with self._lock:
            self._rate_limited[scope] += 1

    def invalid(self) -> None:
        """One 401 / 403 / non-shared 429; may start a Cloudflare ban."""
        with self._lock:
            now = self._clock()
            self._invalid.append(now)
            self._expire(now)
            if len(self._invalid) >= self._invalid_limit and now >= self._banned_until:
                self._banned_until = now + BAN_SECONDS
                self._ints["cloudflare_bans"] += 1

    def banned(self) -> bool:
        with self._lock:
            return self._clock() < self._banned_until

    def _expire(self, now: float) -> None:
        while self._invalid and self._invalid[0] <= now - INVALID_WINDOW_S:
            self._invalid.popleft()

    def snapshot(self) -> EmulatorCounters:
        with self._lock:
            self._expire(self._clock())
            return EmulatorCounters(
                **{name: self._ints[name] for name in _INT_FIELDS},
                max_concurrent_per_webhook=self._max_in_flight,
                invalid_requests_10min=len(self._invalid),
                rate_limited={
                    scope: self._rate_limited[scope]
                    for scope in ("user", "shared", "global", "cloudflare")
                },
                bot_requests=dict(self._bot_requests),
                refusals=dict(self._refusals),
            )

    def reset(self) -> None:
        with self._lock:
            self._ints.clear()
            self._rate_limited.clear()
            self._bot_requests.clear()
            self._refusals.clear()
            self._invalid.clear()
            self._max_in_flight = max(self._in_flight.values(), default=0)
            self._banned_until = float("-inf")
