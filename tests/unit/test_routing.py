"""Routing: the interaction while its token lives (minus the margin), else the webhook."""

from __future__ import annotations

import pytest

from service.delivery.routing import choose_route
from service.discord.snowflake import snowflake_at
from service.domain import Destination, Interaction, ResultRecord, Route, Status
from tests.support import APPLICATION_ID, FAKE_TOKEN, INTERACTION_TOKEN, WEBHOOK_ID

CREATED = 1_790_000_000.0


def record(*, webhook: bool, interaction: bool) -> ResultRecord:
    return ResultRecord(
        tenant="t", workflow_id="w", status=Status.PENDING, results={}, url=None, depth=None,
        message=None,
        destination=Destination(WEBHOOK_ID, FAKE_TOKEN) if webhook else None,
        interaction=Interaction(APPLICATION_ID, snowflake_at(CREATED), INTERACTION_TOKEN)
        if interaction else None,
        requester=None, lane="l", created_at=CREATED, updated_at=CREATED,
        next_attempt_at=CREATED, delivered_at=None, attempts=0, last_error=None,
        orphan_reason=None, messages=(), body_hash="h",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("webhook", "interaction", "age", "rejected", "route"),
    [
        (True, True, 60, False, Route.INTERACTION),
        (True, True, 839, False, Route.INTERACTION),  # 61 s left, margin 60
        (True, True, 840, False, Route.WEBHOOK),  # within the margin: not worth the risk
        (True, True, 2000, False, Route.WEBHOOK),  # expired: never tried
        (True, True, 60, True, Route.WEBHOOK),  # Discord refused it: fall back at once
        (False, True, 60, False, Route.INTERACTION),
        (False, True, 900, False, None),  # expired and nowhere else to go: orphan
        (False, True, 60, True, None),
        (True, False, 0, False, Route.WEBHOOK),
    ],
)
def test_route_choice(
    webhook: bool, interaction: bool, age: float, rejected: bool, route: Route | None
) -> None:
    chosen = choose_route(
        record(webhook=webhook, interaction=interaction),
        now=CREATED + age,
        margin=60,
        interaction_rejected=rejected,
    )
    assert chosen is route
