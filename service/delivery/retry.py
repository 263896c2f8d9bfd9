"""What to do after a response: the classification table and the backoff policy, as values.

``classify`` maps an HTTP status and Discord error code to a :class:`Disposition` (the table in
REFERENCE.md "Errors: retry or not"); ``RetryPolicy.next_attempt`` turns a transient failure into
the time of the next attempt, or ``None`` when the result should be orphaned instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Disposition(StrEnum):
    DELIVERED = "delivered"
    RATE_LIMITED = "rate_limited"  # wait and send again; uses up no attempt
    TRANSIENT = "transient"  # retry with backoff
    PERMANENT = "permanent"  # this payload will never be taken
    DEAD_WEBHOOK = "dead_webhook"  # the webhook is gone or its token wrong: never call it again
    AMBIGUOUS = "ambiguous"  # no answer after sending: it may have been posted; retry anyway


UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027
_TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524})


def classify(status: int, code: int | None) -> Disposition:
    if 200 <= status < 300:
        return Disposition.DELIVERED
    if status == 429:
        return Disposition.RATE_LIMITED
    if (status, code) in ((404, UNKNOWN_WEBHOOK), (401, INVALID_WEBHOOK_TOKEN)):
        return Disposition.DEAD_WEBHOOK
    if status in _TRANSIENT_STATUSES or status >= 500:
        return Disposition.TRANSIENT
    return Disposition.PERMANENT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by age."""

    base: float = 2.0
    cap: float = 600.0
    max_attempts: int = 12
    max_age: float = 24 * 3600.0

    def next_attempt(
        self,
        *,
        attempts: int,
        created_at: float,
        now: float,
        rng: random.Random,
        not_before: float | None = None,
    ) -> float | None:
        """When to try again after ``attempts`` counted failures; ``None`` means give up.

        ``not_before`` honours a server's ``Retry-After`` on a 503.
        """
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        at = now + rng.uniform(0.0, ceiling)
        if not_before is not None:
            at = max(at, not_before)
        if at - created_at > self.max_age:
            return None
        return at
