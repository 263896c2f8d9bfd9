"""The retry policy: exponential backoff with full jitter, bounded by attempts and age."""

from __future__ import annotations

import random

from service.delivery.retry import RetryPolicy


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base=2.0, cap=600.0, max_attempts=50, max_age=1e9)
    rng = random.Random(7)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (9, 512.0), (10, 600.0), (30, 600.0)]:
        delays = [
            policy.next_attempt(attempts=attempts, created_at=0.0, now=100.0, rng=rng) - 100.0  # type: ignore[operator]
            for _ in range(200)
        ]
        assert min(delays) >= 0.0 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # full jitter reaches near the ceiling
        assert min(delays) < ceiling * 0.2  # ... and near zero


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(1)
    assert policy.next_attempt(attempts=2, created_at=0, now=0, rng=rng) is not None
    assert policy.next_attempt(attempts=3, created_at=0, now=0, rng=rng) is None


def test_gives_up_past_max_age() -> None:
    policy = RetryPolicy(base=2.0, max_age=100.0)
    rng = random.Random(1)
    assert policy.next_attempt(attempts=1, created_at=0, now=50, rng=rng) is not None
    assert policy.next_attempt(attempts=1, created_at=0, now=100.5, rng=rng) is None


def test_server_retry_after_is_honoured() -> None:
    policy = RetryPolicy(base=2.0)
    at = policy.next_attempt(
        attempts=1, created_at=0, now=10, rng=random.Random(1), not_before=40.0
    )
    assert at == 40.0
