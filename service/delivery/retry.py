"""When to try a failed part again: exponential backoff with full jitter, as a value.

``RetryPolicy.next_attempt`` turns a counted failure into the time of the next attempt, or
``None`` when the result should be orphaned instead. Which answers count as failures is
``service.discord.outcome``'s table; what to do with each is ``service.delivery.decide``'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by age.

    ``ambiguous_wait`` is the least time before a part that may have been posted is sent again:
    a message Discord answers late is still posted, and a resend right away would repeat it.
    """

    base: float = 2.0
    cap: float = 600.0
    max_attempts: int = 12
    max_age: float = 24 * 3600.0
    ambiguous_wait: float = 15.0

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

        ``not_before`` honours a server's ``Retry-After`` on a 503, or the ambiguous wait.
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
