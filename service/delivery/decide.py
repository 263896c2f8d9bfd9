"""The delivery decision: what one answer from Discord means for the result, as a value.

``decide`` is the worker's only rule book. The worker chooses the route, renders, sends, and then
does what the decision says; it decides nothing itself. Each decision also says how its attempt
is recorded (``outcome``) and whether it uses up one of the result's attempts (``counts``).

=========================  ===========================  ====================  ======
answer                     route                        decision              counts
=========================  ===========================  ====================  ======
2xx                        any                          Sent                  no
429                        any                          Resend                no
404/10015, 401/50027       interaction                  FallBack              no
404/10015, 401/50027       webhook                      WebhookDead           yes
403/50001, 50013, 50007,   any                          FallBack ("not here") no
404/10003
401                        channel, dm                  BotTokenDead          yes
other 4xx                  any                          Orphan (refused)      yes
5xx, never left            any                          RetryAt / Orphan      yes
no answer after send       any                          RetryAt / Orphan      yes
=========================  ===========================  ====================  ======

A failure that may be retried becomes ``RetryAt`` while the policy allows, else ``Orphan`` with
``attempts_exhausted``. A part sent without an answer waits at least ``ambiguous_wait`` first.
``FallBack`` and ``WebhookDead`` move the result on to the next route of
:func:`service.delivery.routing.choose_route`; their ``reason`` becomes the orphan reason when no
route is left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from service.delivery.retry import RetryPolicy
from service.delivery.routing import BOT_ROUTES
from service.discord.outcome import UNKNOWN_WEBHOOK, Disposition, SendOutcome
from service.domain import AttemptOutcome, InFlight, Route


@dataclass(frozen=True, slots=True)
class Sent:
    """Discord took the part: store its message id, go on with the next part."""

    message_id: str
    outcome: AttemptOutcome = AttemptOutcome.DELIVERED
    counts: bool = False


@dataclass(frozen=True, slots=True)
class Resend:
    """Not taken (a 429): send the same part again once the bucket allows."""

    outcome: AttemptOutcome = AttemptOutcome.RATE_LIMITED
    counts: bool = False


@dataclass(frozen=True, slots=True)
class FallBack:
    """This route was refused for good for this result (the interaction, or a target that is
    "not here" for the bot or the webhook): the next route takes over now, never this one."""

    reason: str = "interaction_rejected"
    outcome: AttemptOutcome = AttemptOutcome.FALLBACK
    counts: bool = False


@dataclass(frozen=True, slots=True)
class WebhookDead:
    """The webhook is gone for this token: orphan its pending results, never call it again."""

    reason: str
    outcome: AttemptOutcome = AttemptOutcome.DEAD_WEBHOOK
    counts: bool = True


BOT_TOKEN_INVALID = "bot_token_invalid"  # noqa: S105 - an orphan reason, not a token


@dataclass(frozen=True, slots=True)
class BotTokenDead:
    """Discord no longer takes the tenant's bot token: no bot route can be used for it."""

    reason: str = BOT_TOKEN_INVALID
    outcome: AttemptOutcome = AttemptOutcome.REFUSED
    counts: bool = True


@dataclass(frozen=True, slots=True)
class Orphan:
    """Keep the result for retrieval: it cannot be delivered."""

    reason: str
    outcome: AttemptOutcome = AttemptOutcome.REFUSED
    counts: bool = True


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Park the result until ``at``; its lane goes on with other results meanwhile."""

    at: float
    error: str
    outcome: AttemptOutcome = AttemptOutcome.RETRY
    counts: bool = True


Decision = Sent | Resend | FallBack | WebhookDead | BotTokenDead | Orphan | RetryAt

# Refusals that say "not here": the target is out of reach for this sender, another may work.
NOT_HERE = {
    10003: "unknown_channel",
    50001: "missing_access",
    50007: "dm_closed",
    50013: "missing_permissions",
}


def decide(
    outcome: SendOutcome,
    *,
    route: Route,
    attempts: int,
    created_at: float,
    now: float,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """What to do after ``outcome``; ``attempts`` is how many counted attempts came before."""
    match outcome.disposition:
        case Disposition.DELIVERED:
            return Sent(outcome.message_id or "")
        case Disposition.RATE_LIMITED:
            return Resend()
        case Disposition.DEAD_WEBHOOK if route is Route.INTERACTION:
            return FallBack()
        case Disposition.DEAD_WEBHOOK:
            deleted = outcome.discord_code == UNKNOWN_WEBHOOK
            return WebhookDead("webhook_deleted" if deleted else "webhook_unauthorized")
        case Disposition.PERMANENT if outcome.discord_code in NOT_HERE:
            return FallBack(NOT_HERE[outcome.discord_code or 0])
        case Disposition.PERMANENT if route in BOT_ROUTES and outcome.http_status == 401:
            return BotTokenDead()
        case Disposition.PERMANENT:
            code = f"_{outcome.discord_code}" if outcome.discord_code else ""
            return Orphan(f"discord_refused_{outcome.http_status}{code}")
        case Disposition.TRANSIENT | Disposition.AMBIGUOUS:
            ambiguous = outcome.disposition is Disposition.AMBIGUOUS
            waits = [
                now + outcome.retry_not_before if outcome.retry_not_before else None,
                now + policy.ambiguous_wait if ambiguous else None,
            ]
            not_before = max((w for w in waits if w is not None), default=None)
            kind = AttemptOutcome.AMBIGUOUS if ambiguous else AttemptOutcome.RETRY
            at = policy.next_attempt(
                attempts=attempts + 1,
                created_at=created_at,
                now=now,
                rng=rng,
                not_before=not_before,
            )
            if at is None:
                return Orphan("attempts_exhausted", outcome=AttemptOutcome.GAVE_UP)
            return RetryAt(at, outcome.error or kind.value, outcome=kind)


INTERRUPTED = "interrupted: no answer was recorded before the process stopped"


def interrupted(in_flight: InFlight | None, delivered_parts: set[int]) -> bool:
    """A part marked in flight whose message id never came back: the process that sent it
    stopped (a crash, a lost lease) after marking it. It may have been posted; sending it again
    is the only way not to lose it, and the attempt is recorded as ambiguous so that the possible
    duplicate is visible. Resend at once: the request that may have landed is long over."""
    return in_flight is not None and in_flight.part not in delivered_parts
