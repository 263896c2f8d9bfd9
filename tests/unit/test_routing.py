"""Routing: the interaction while its token lives (minus the margin), else the webhook, else the
tenant's bot in a channel, else a DM where allowed; refused routes are skipped."""

from __future__ import annotations

import pytest

from service.delivery.routing import bot_channel, choose_route, dm_allowed, has_bot_target
from service.discord.snowflake import snowflake_at
from service.domain import Destination, Interaction, Requester, ResultRecord, Route, Status
from tests.support import (
    APPLICATION_ID,
    CHANNEL_ID,
    FAKE_TOKEN,
    INTERACTION_TOKEN,
    USER_ID,
    WEBHOOK_ID,
)

CREATED = 1_790_000_000.0
REQUESTER_CHANNEL = "667788990011223355"


def record(
    *,
    webhook: bool = False,
    interaction: bool = False,
    channel: bool = False,
    requester: Requester | None = None,
    dm_fallback: bool | None = None,
) -> ResultRecord:
    return ResultRecord(
        tenant="t", workflow_id="w", status=Status.PENDING, results={}, url=None, depth=None,
        message=None,
        destination=Destination(WEBHOOK_ID, FAKE_TOKEN) if webhook else None,
        interaction=Interaction(APPLICATION_ID, snowflake_at(CREATED), INTERACTION_TOKEN)
        if interaction else None,
        requester=requester, lane="l", created_at=CREATED, updated_at=CREATED,
        next_attempt_at=CREATED, delivered_at=None, attempts=0, last_error=None,
        orphan_reason=None, messages=(), body_hash="h",
        channel_id=CHANNEL_ID if channel else None, dm_fallback=dm_fallback,
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
def test_route_choice_without_a_bot(
    webhook: bool, interaction: bool, age: float, rejected: bool, route: Route | None
) -> None:
    chosen = choose_route(
        record(webhook=webhook, interaction=interaction),
        now=CREATED + age,
        margin=60,
        refused={Route.INTERACTION} if rejected else set(),
    )
    assert chosen is route


FULL = Requester(user_id=USER_ID, channel_id=REQUESTER_CHANNEL)
WEB, INT, CHA, DM = Route.WEBHOOK, Route.INTERACTION, Route.CHANNEL, Route.DM


@pytest.mark.parametrize(
    ("result", "refused", "dm_default", "route"),
    [
        # the order: interaction, webhook, bot channel, DM
        (record(interaction=True, webhook=True, channel=True), set(), False, INT),
        (record(interaction=True, webhook=True, channel=True), {INT}, False, WEB),
        (record(webhook=True, channel=True), {WEB}, False, CHA),
        (record(channel=True), set(), False, CHA),  # a channel as the only target
        # the requester's channel when the result names none
        (record(webhook=True, requester=FULL), {WEB}, False, CHA),
        # a DM only where allowed: the result's word first, else the tenant's default
        (record(webhook=True, requester=FULL), {WEB, CHA}, False, None),
        (record(webhook=True, requester=FULL), {WEB, CHA}, True, DM),
        (record(webhook=True, requester=FULL, dm_fallback=True), {WEB, CHA}, False, DM),
        (record(webhook=True, requester=FULL, dm_fallback=False), {WEB, CHA}, True, None),
        (record(channel=True, requester=FULL, dm_fallback=True), {CHA}, False, DM),
        # nobody to write to
        (record(channel=True, dm_fallback=True), {CHA}, True, None),
        (record(channel=True, requester=FULL, dm_fallback=True), {CHA, DM}, True, None),
    ],
)
def test_route_choice_with_a_bot(
    result: ResultRecord, refused: set[Route], dm_default: bool, route: Route | None
) -> None:
    chosen = choose_route(
        result, now=CREATED + 60, margin=60, refused=refused, bot_dm_default=dm_default
    )
    assert chosen is route


def test_without_a_bot_no_bot_route_is_chosen() -> None:
    result = record(webhook=True, channel=True, requester=FULL, dm_fallback=True)
    assert choose_route(result, now=CREATED, margin=60, refused={WEB}) is None


@pytest.mark.parametrize(
    ("result", "channel", "dm", "target"),
    [
        (record(channel=True, requester=FULL), CHANNEL_ID, False, True),
        (record(requester=FULL), REQUESTER_CHANNEL, False, True),
        (record(requester=Requester(user_id=USER_ID), dm_fallback=True), None, True, True),
        (record(requester=Requester(guild_id="1")), None, False, False),
        (record(webhook=True), None, False, False),
    ],
)
def test_bot_targets(result: ResultRecord, channel: str | None, dm: bool, target: bool) -> None:
    assert bot_channel(result) == channel
    assert dm_allowed(result, tenant_default=False) is dm
    assert has_bot_target(result) is target
