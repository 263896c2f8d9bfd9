"""The delivery decision as a table: one answer, one route, one history -> one decision."""

from __future__ import annotations

import random

import pytest

from service.delivery.decide import (
    BotTokenDead,
    Decision,
    FallBack,
    Orphan,
    Resend,
    RetryAt,
    Sent,
    WebhookDead,
    decide,
    interrupted,
)
from service.delivery.retry import RetryPolicy
from service.discord.outcome import Disposition, SendOutcome
from service.domain import AttemptOutcome, InFlight, Route

NOW = 1_790_000_000.0
POLICY = RetryPolicy(base=2.0, cap=600.0, max_attempts=12, max_age=86_400.0, ambiguous_wait=15.0)


def answer(
    disposition: Disposition,
    status: int | None = None,
    code: int | None = None,
    *,
    message_id: str | None = None,
    retry_not_before: float | None = None,
) -> SendOutcome:
    return SendOutcome(
        disposition=disposition,
        duration_ms=1.0,
        http_status=status,
        discord_code=code,
        message_id=message_id,
        retry_not_before=retry_not_before,
        error=f"HTTP {status}" if status else "ReadTimeout",
    )


def run(
    outcome: SendOutcome, *, route: Route = Route.WEBHOOK, attempts: int = 0, age: float = 0.0
) -> Decision:
    return decide(
        outcome,
        route=route,
        attempts=attempts,
        created_at=NOW - age,
        now=NOW,
        policy=POLICY,
        rng=random.Random(3),
    )


@pytest.mark.parametrize(
    ("outcome", "route", "expected"),
    [
        (answer(Disposition.DELIVERED, 200, message_id="9"), Route.WEBHOOK, Sent("9")),
        (answer(Disposition.DELIVERED, 200, message_id="9"), Route.INTERACTION, Sent("9")),
        (answer(Disposition.RATE_LIMITED, 429), Route.WEBHOOK, Resend()),
        (answer(Disposition.RATE_LIMITED, 429), Route.INTERACTION, Resend()),
        (answer(Disposition.DEAD_WEBHOOK, 404, 10015), Route.INTERACTION, FallBack()),
        (answer(Disposition.DEAD_WEBHOOK, 401, 50027), Route.INTERACTION, FallBack()),
        (
            answer(Disposition.DEAD_WEBHOOK, 404, 10015),
            Route.WEBHOOK,
            WebhookDead("webhook_deleted"),
        ),
        (
            answer(Disposition.DEAD_WEBHOOK, 401, 50027),
            Route.WEBHOOK,
            WebhookDead("webhook_unauthorized"),
        ),
        (
            answer(Disposition.PERMANENT, 400, 50035),
            Route.WEBHOOK,
            Orphan("discord_refused_400_50035"),
        ),
        (answer(Disposition.PERMANENT, 403), Route.INTERACTION, Orphan("discord_refused_403")),
        # "not here": the next route takes over, on any route, never retried
        (answer(Disposition.PERMANENT, 403, 50001), Route.CHANNEL, FallBack("missing_access")),
        (
            answer(Disposition.PERMANENT, 403, 50013),
            Route.CHANNEL,
            FallBack("missing_permissions"),
        ),
        (answer(Disposition.PERMANENT, 403, 50007), Route.DM, FallBack("dm_closed")),
        (answer(Disposition.PERMANENT, 404, 10003), Route.CHANNEL, FallBack("unknown_channel")),
        (answer(Disposition.PERMANENT, 404, 10003), Route.WEBHOOK, FallBack("unknown_channel")),
        (answer(Disposition.PERMANENT, 403, 50013), Route.WEBHOOK, FallBack("missing_permissions")),
        # a bot token Discord no longer takes
        (answer(Disposition.PERMANENT, 401, 0), Route.CHANNEL, BotTokenDead()),
        (answer(Disposition.PERMANENT, 401), Route.DM, BotTokenDead()),
        (answer(Disposition.PERMANENT, 401), Route.WEBHOOK, Orphan("discord_refused_401")),
        # the bot routes share the rest of the table
        (answer(Disposition.RATE_LIMITED, 429), Route.CHANNEL, Resend()),
        (
            answer(Disposition.PERMANENT, 400, 50035),
            Route.CHANNEL,
            Orphan("discord_refused_400_50035"),
        ),
    ],
)
def test_answers_that_settle_at_once(
    outcome: SendOutcome, route: Route, expected: Decision
) -> None:
    assert run(outcome, route=route) == expected


@pytest.mark.parametrize(
    ("decision", "outcome", "counts"),
    [
        (Sent("1"), AttemptOutcome.DELIVERED, False),
        (Resend(), AttemptOutcome.RATE_LIMITED, False),
        (FallBack(), AttemptOutcome.FALLBACK, False),
        (FallBack("dm_closed"), AttemptOutcome.FALLBACK, False),
        (BotTokenDead(), AttemptOutcome.REFUSED, True),
        (WebhookDead("webhook_deleted"), AttemptOutcome.DEAD_WEBHOOK, True),
        (Orphan("discord_refused_400"), AttemptOutcome.REFUSED, True),
        (RetryAt(NOW, "HTTP 500"), AttemptOutcome.RETRY, True),
    ],
)
def test_each_decision_says_how_its_attempt_is_recorded(
    decision: Decision, outcome: AttemptOutcome, counts: bool
) -> None:
    assert (decision.outcome, decision.counts) == (outcome, counts)


def test_a_transient_failure_retries_within_the_backoff() -> None:
    decision = run(answer(Disposition.TRANSIENT, 503))
    assert isinstance(decision, RetryAt)
    assert NOW <= decision.at <= NOW + POLICY.base
    assert (decision.outcome, decision.error) == (AttemptOutcome.RETRY, "HTTP 503")


def test_a_server_retry_after_is_honoured() -> None:
    decision = run(answer(Disposition.TRANSIENT, 503, retry_not_before=40.0))
    assert isinstance(decision, RetryAt) and decision.at == NOW + 40.0


def test_an_unanswered_send_waits_longer_than_a_refusal_before_it_is_resent() -> None:
    refused = run(answer(Disposition.TRANSIENT, 500))
    unanswered = run(answer(Disposition.AMBIGUOUS))
    assert isinstance(refused, RetryAt) and isinstance(unanswered, RetryAt)
    assert unanswered.at >= NOW + POLICY.ambiguous_wait > refused.at
    assert unanswered.outcome is AttemptOutcome.AMBIGUOUS


@pytest.mark.parametrize("disposition", [Disposition.TRANSIENT, Disposition.AMBIGUOUS])
def test_the_last_attempt_orphans_the_result(disposition: Disposition) -> None:
    decision = run(answer(disposition, 500), attempts=POLICY.max_attempts - 1)
    assert decision == Orphan("attempts_exhausted", outcome=AttemptOutcome.GAVE_UP)
    assert decision.counts


def test_a_result_past_its_age_is_orphaned_instead_of_retried() -> None:
    decision = run(answer(Disposition.TRANSIENT, 502), age=POLICY.max_age + 1)
    assert isinstance(decision, Orphan) and decision.reason == "attempts_exhausted"


@pytest.mark.parametrize(
    ("in_flight", "delivered", "expected"),
    [
        (None, set(), False),
        (InFlight(part=0, route=Route.WEBHOOK, since=NOW), set(), True),
        (InFlight(part=1, route=Route.WEBHOOK, since=NOW), {0}, True),
        (InFlight(part=1, route=Route.WEBHOOK, since=NOW), {0, 1}, False),
    ],
)
def test_a_part_left_in_flight_without_a_message_is_interrupted(
    in_flight: InFlight | None, delivered: set[int], expected: bool
) -> None:
    assert interrupted(in_flight, delivered) is expected
