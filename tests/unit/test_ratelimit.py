"""Rate-limit math: headers in, waits out, with a clock the test controls."""

from __future__ import annotations

import itertools

import pytest

from service.discord.ratelimit import (
    CLOUDFLARE_PAUSE,
    SAFETY_MARGIN,
    Bucket,
    InvalidRequestWindow,
    RateLimitInfo,
    TokenBucket,
    counts_as_invalid,
    parse_rate_limit,
)

OK_HEADERS = {
    "X-RateLimit-Limit": "5",
    "X-RateLimit-Remaining": "4",
    "X-RateLimit-Reset": "1790000001.5",
    "X-RateLimit-Reset-After": "1.5",
    "X-RateLimit-Bucket": "abc",
}


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, OK_HEADERS, {}, RateLimitInfo(remaining=4, reset_after=1.5, bucket="abc")),
        (204, {}, None, RateLimitInfo()),
        (
            429,
            {**OK_HEADERS, "X-RateLimit-Remaining": "0", "X-RateLimit-Scope": "user"},
            {"message": "You are being rate limited.", "retry_after": 1.234, "global": False},
            RateLimitInfo(0, 1.5, "abc", retry_after=1.234, scope="user"),
        ),
        (
            429,
            {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", "Retry-After": "1"},
            {"message": "You are being rate limited.", "retry_after": 0.5, "global": True},
            RateLimitInfo(retry_after=0.5, scope="global", is_global=True),
        ),
        (
            429,
            {**OK_HEADERS, "X-RateLimit-Scope": "shared"},
            {"retry_after": 42.0, "global": False},
            RateLimitInfo(4, 1.5, "abc", retry_after=42.0, scope="shared"),
        ),
        (
            429,
            {"Retry-After": "7", "X-RateLimit-Scope": "user"},
            {"message": "no number"},
            RateLimitInfo(retry_after=7.0, scope="user"),
        ),
        (
            429,
            {"Content-Type": "text/html"},
            "<html>error code: 1015</html>",
            RateLimitInfo(retry_after=CLOUDFLARE_PAUSE, scope="cloudflare", is_global=True),
        ),
        (
            200,
            {"X-RateLimit-Remaining": "x", "X-RateLimit-Reset-After": "nan"},
            {},
            RateLimitInfo(),
        ),
    ],
)
def test_parse_rate_limit(
    status: int, headers: dict[str, str], body: object, expected: RateLimitInfo
) -> None:
    assert parse_rate_limit(status, headers, body) == expected


def test_bucket_waits_before_it_is_empty_not_after() -> None:
    bucket = Bucket()
    assert bucket.delay(0.0) == 0
    for remaining in (4, 3, 2, 1, 0):
        bucket.spend(0.0)
        bucket.observe(RateLimitInfo(remaining=remaining, reset_after=2.0), 0.1)
    # the fifth answer said nothing is left: the sixth request waits for the reset
    assert bucket.delay(0.2) == pytest.approx(2.1 + SAFETY_MARGIN - 0.2)
    assert bucket.delay(2.1 + SAFETY_MARGIN) == 0


def test_bucket_counts_requests_still_in_flight() -> None:
    bucket = Bucket()
    bucket.observe(RateLimitInfo(remaining=1, reset_after=2.0), 0.0)
    bucket.spend(0.1)
    assert bucket.delay(0.1) > 0  # the last slot is taken before its answer arrives


def test_a_bucket_can_keep_its_last_request_for_someone_else() -> None:
    bucket = Bucket()
    bucket.observe(RateLimitInfo(remaining=1, reset_after=2.0), 0.0)
    assert bucket.delay(0.5) == 0  # a result takes the last request of the window
    assert bucket.delay(0.5, keep=1) == pytest.approx(2.0 + SAFETY_MARGIN - 0.5)  # an edit waits
    bucket.observe(RateLimitInfo(remaining=2, reset_after=2.0), 0.0)
    assert bucket.delay(0.5, keep=1) == 0


def test_a_429_blocks_the_lane_for_retry_after() -> None:
    bucket = Bucket()
    bucket.observe(RateLimitInfo(retry_after=3.0, scope="shared"), 10.0)
    assert bucket.delay(10.0) == pytest.approx(3.0 + SAFETY_MARGIN)
    assert bucket.delay(13.0 + SAFETY_MARGIN) == 0


def test_a_global_429_does_not_block_the_lane_itself() -> None:
    bucket = Bucket()
    bucket.observe(RateLimitInfo(retry_after=3.0, scope="global", is_global=True), 0.0)
    assert bucket.delay(0.0) == 0


def test_token_bucket_spreads_requests_at_the_rate() -> None:
    budget = TokenBucket(rate=10.0, burst=2.0)
    waits = [budget.take(0.0) for _ in range(5)]
    # a burst of two, then each caller is told when to ask again; nothing is reserved
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.1, 0.1])
    assert budget.take(0.1) == 0.0
    assert budget.take(0.1) == pytest.approx(0.1)
    assert budget.take(10.0) == 0.0


def test_token_bucket_lets_no_late_caller_go_out_with_the_next() -> None:
    # given one token per 0.1 s, and two callers that were told to come back at 0.1
    budget = TokenBucket(rate=10.0, burst=1.0)
    assert budget.take(0.0) == 0.0
    assert budget.take(0.0) == pytest.approx(0.1)
    # when both come back late, at the same moment, only one goes; the other waits a full step
    assert budget.take(0.35) == 0.0
    assert budget.take(0.35) == pytest.approx(0.1)


def test_token_bucket_pause_holds_everything() -> None:
    budget = TokenBucket(rate=10.0, burst=10.0)
    budget.pause(5.0)
    assert budget.take(1.0) == pytest.approx(4.0)
    assert budget.take(5.0) == 0.0


def test_invalid_requests_slow_down_long_before_a_ban() -> None:
    window = InvalidRequestWindow(window=600, slow_from=10, stop_at=20)
    for i in range(9):
        window.add(float(i))
    assert window.delay(9.0) == 0
    for i in range(6):
        window.add(10.0 + i)
    assert 0 < window.delay(16.0) < 2
    for i in range(5):
        window.add(20.0 + i)
    assert window.delay(30.0) == pytest.approx(600 - 30)  # until the first falls out
    assert window.count(700.0) == 0 and window.delay(700.0) == 0


@pytest.mark.parametrize(
    ("status", "scope", "invalid"),
    [(401, None, True), (403, None, True), (429, "user", True), (429, "global", True),
     (429, "shared", False), (404, None, False), (500, None, False)],
)  # fmt: skip
def test_what_counts_toward_the_ban(status: int, scope: str | None, invalid: bool) -> None:
    assert counts_as_invalid(status, scope) is invalid


def test_a_replica_takes_its_share_of_the_budget() -> None:
    budget = TokenBucket(rate=45.0, burst=1.0)
    budget.share(15.0)  # three replicas
    granted = [t for t in (i / 100 for i in range(101)) if budget.take(t) == 0.0]
    # asked every 10 ms for a second: one grant each 1/15 s at most, rounded up to the asking
    assert len(granted) == 15
    assert all(b - a >= 1 / 15 - 1e-9 for a, b in itertools.pairwise(granted))


def test_replicas_bursts_together_stay_within_the_fleets_burst() -> None:
    # given three replicas, each with a third of a 45/s budget whose burst is 3
    replicas = [TokenBucket(rate=45.0, burst=3.0) for _ in range(3)]
    for budget in replicas:
        budget.share(15.0)
    # when all of them wake after a long stall and ask every millisecond for one second
    granted = [t for t in (i / 1000 for i in range(1001)) for b in replicas if b.take(t) == 0.0]
    # then together they never go past the fleet's rate plus the fleet's burst
    assert len(granted) <= 45 + 3
    assert sum(b.burst for b in replicas) == 3.0
