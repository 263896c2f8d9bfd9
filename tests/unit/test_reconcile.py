"""Reconciliation's rules: which part may have been posted since when, and which message is it."""

from __future__ import annotations

import pytest

from service.delivery.reconcile import (
    LOOK_BACK_SECONDS,
    find_marked,
    next_after,
    search_after,
    unanswered_since,
)
from service.discord.marker import marker
from service.discord.snowflake import snowflake_time
from service.domain import (
    Attempt,
    AttemptOutcome,
    DeliveredMessage,
    Destination,
    InFlight,
    ResultRecord,
    Route,
    Status,
)
from tests.support import FAKE_TOKEN, WEBHOOK_ID

T0 = 1_790_000_000.0


def record(
    *, attempts: int = 1, in_flight: InFlight | None = None, delivered: tuple[int, ...] = ()
) -> ResultRecord:
    return ResultRecord(
        tenant="t", workflow_id="wf", status=Status.PENDING, results={}, url=None, depth=None,
        message=None, destination=Destination(WEBHOOK_ID, FAKE_TOKEN), interaction=None,
        requester=None, lane="l", created_at=T0, updated_at=T0, next_attempt_at=T0,
        delivered_at=None, attempts=attempts, last_error="ReadTimeout", orphan_reason=None,
        messages=tuple(DeliveredMessage(p, f"m{p}", Route.WEBHOOK, T0) for p in delivered),
        body_hash="h", in_flight=in_flight,
    )  # fmt: skip


def tried(
    at: float, outcome: AttemptOutcome, part: int = 0, route: Route = Route.WEBHOOK
) -> Attempt:
    return Attempt(at=at, route=route, outcome=outcome, duration_ms=2000.0, part=part)


AMBIGUOUS, DELIVERED = AttemptOutcome.AMBIGUOUS, AttemptOutcome.DELIVERED
RETRY = AttemptOutcome.RETRY


@pytest.mark.parametrize(
    ("result", "history", "part", "since"),
    [
        # a crash left the part in flight on the webhook: since it was marked
        (record(in_flight=InFlight(0, Route.WEBHOOK, T0)), None, 0, T0),
        (record(attempts=0, in_flight=InFlight(0, Route.WEBHOOK, T0)), None, 0, T0),
        # ... on another route, or for another part, or delivered after all: nothing to look for
        (record(in_flight=InFlight(0, Route.CHANNEL, T0)), None, 0, None),
        (record(in_flight=InFlight(1, Route.WEBHOOK, T0)), None, 0, None),
        (record(in_flight=InFlight(0, Route.WEBHOOK, T0), delivered=(0,)), None, 0, None),
        # the part's last attempt on the webhook got no answer: since it left
        (record(), [tried(T0 + 10, AMBIGUOUS)], 0, T0 + 8),
        (record(), [tried(T0, DELIVERED), tried(T0 + 10, AMBIGUOUS, part=1)], 1, T0 + 8),
        # a later answer settled it, or it was another part, route or round
        (record(), [tried(T0 + 10, AMBIGUOUS), tried(T0 + 30, RETRY)], 0, None),
        (record(), [tried(T0 + 10, AMBIGUOUS, part=1)], 0, None),
        (record(), [tried(T0 + 10, AMBIGUOUS, route=Route.INTERACTION)], 0, None),
        (record(attempts=0), [tried(T0 + 10, AMBIGUOUS)], 0, None),  # redelivered since
        (record(), [], 0, None),
    ],
)
def test_when_a_part_may_have_been_posted(
    result: ResultRecord, history: list[Attempt] | None, part: int, since: float | None
) -> None:
    assert unanswered_since(result, history, part) == since


def test_the_channel_is_read_from_a_little_before_the_send() -> None:
    after = search_after(T0)
    assert snowflake_time(after) == pytest.approx(T0 - LOOK_BACK_SECONDS, abs=0.001)


LINE = marker("wf", 1, 3)


@pytest.mark.parametrize(
    ("messages", "found"),
    [
        ([{"id": "5", "webhook_id": WEBHOOK_ID, "content": f"text\n{LINE}"}], "5"),
        # another webhook, a bot, another part, or the marker not as the last line
        ([{"id": "5", "webhook_id": "1", "content": f"text\n{LINE}"}], None),
        ([{"id": "5", "author": {"id": "1"}, "content": f"text\n{LINE}"}], None),
        ([{"id": "5", "webhook_id": WEBHOOK_ID, "content": marker("wf", 0, 3)}], None),
        ([{"id": "5", "webhook_id": WEBHOOK_ID, "content": f"{LINE}\nmore"}], None),
        (
            [
                {"id": "7", "webhook_id": WEBHOOK_ID, "content": "other"},
                {"id": "6", "webhook_id": WEBHOOK_ID, "content": LINE},
            ],
            "6",
        ),
        ([], None),
    ],
)
def test_the_marked_message_of_that_webhook_is_the_part(
    messages: list[dict[str, str]], found: str | None
) -> None:
    assert find_marked(messages, webhook_id=WEBHOOK_ID, marker=LINE) == found


def test_the_next_page_starts_after_the_newest_message() -> None:
    assert next_after([{"id": "12"}, {"id": "100"}, {"id": "x"}]) == "100"
    assert next_after([]) is None
