"""The rate-limit math on its own: fixed windows and announcements over a fake clock."""

from __future__ import annotations

import pytest

from service.testing.ratelimit import FixedWindow, RateLimiter, Verdict, ceil_ms
from tests.emulator.support import FakeClock


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, 0.0), (1.0, 1.0), (1.0001, 1.001), (0.9999, 1.0), (-3.0, 0.0), (1.2345, 1.235)],
)
def test_ceil_ms_never_rounds_a_wait_down(seconds: float, expected: float) -> None:
    assert ceil_ms(seconds) == expected
    assert ceil_ms(seconds) >= seconds - 1e-9


@pytest.mark.parametrize(
    ("takes_at", "now", "remaining", "reset_after"),
    [
        ([], 0.0, 5, 2.0),
        ([0.0], 0.5, 4, 1.5),
        ([0.0, 0.1, 0.2, 0.3, 0.4], 1.9, 0, 0.1),
        ([0.0, 0.1, 0.2, 0.3, 0.4], 2.0, 5, 2.0),
        ([1.0, 2.5], 2.9, 3, 0.1),
        ([1.0, 3.5], 3.9, 4, 1.6),
    ],
)
def test_fixed_window_opens_with_its_first_request(
    takes_at: list[float], now: float, remaining: int, reset_after: float
) -> None:
    window = FixedWindow(5, 2.0)
    for at in takes_at:
        window.take(at)
    assert window.remaining(now) == remaining
    assert window.reset_after(now) == pytest.approx(reset_after)


def limiter(clock: FakeClock, *, webhook: tuple[int, float] = (2, 1.0)) -> RateLimiter:
    return RateLimiter(
        clock, lambda: 1_790_000_000.0, webhook=webhook, channel=(2, 60.0), global_=(3, 1.0)
    )


def test_route_bucket_refuses_when_empty_and_flags_the_early_retry() -> None:
    clock = FakeClock(0.0)
    rl = limiter(clock)

    def acquire() -> Verdict:
        return rl.acquire_route(bucket=("w", "execute"), lane=("w", ""), counts_global=True)

    assert [acquire().limited for _ in range(2)] == [False, False]
    refused = acquire()
    assert (refused.scope, refused.retry_after, refused.premature) == ("user", 1.0, True)
    clock.now = 1.0
    assert acquire().premature is False


def test_global_window_is_shared_by_all_buckets_unless_exempt() -> None:
    clock = FakeClock(0.0)
    rl = limiter(clock, webhook=(10, 1.0))
    for name in ("a", "b", "c"):
        assert not rl.acquire_route(bucket=(name, "execute"), lane=name, counts_global=True).limited
    assert rl.acquire_route(bucket=("d", "execute"), lane="d", counts_global=True).scope == "global"
    assert not rl.acquire_route(bucket=("i", "execute"), lane="i", counts_global=False).limited


def test_channel_limit_announces_its_retry_to_the_lane() -> None:
    clock = FakeClock(0.0)
    rl = limiter(clock, webhook=(10, 1.0))
    assert rl.acquire_channel(channel="c", lane=("w", "")) is None
    assert rl.acquire_channel(channel="c", lane=("w", "")) is None
    clock.now = 20.0
    assert rl.acquire_channel(channel="c", lane=("w", "")) == 40.0
    clock.now = 30.0
    verdict = rl.acquire_route(bucket=("w", "execute"), lane=("w", ""), counts_global=True)
    assert verdict.premature is True
