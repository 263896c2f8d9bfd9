"""The run engine's rule book: what to do next with a run at a given moment."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.delivery.runs import (
    Abandon,
    EditOriginal,
    EditProgress,
    HandOff,
    NotifyAbandoned,
    Plan,
    PostProgress,
    ShowFinal,
    Wait,
    plan,
)
from service.discord.snowflake import snowflake_at
from service.domain import Destination, Interaction, Route, RunRecord, RunStatus

T0 = 1_790_000_000.0
MARGIN = 60.0
INTERACTION = Interaction("445566778899001122", snowflake_at(T0), "token-" + "t" * 40)
HOOK = Destination("112233445566778899", "hook-" + "h" * 60)

BASE = RunRecord(
    tenant="acme",
    workflow_id="wf",
    status=RunStatus.RUNNING,
    title=None,
    url=None,
    depth=None,
    destination=HOOK,
    interaction=INTERACTION,
    requester=None,
    timeout_seconds=7200,
    created_at=T0,
    updated_at=T0,
    last_activity_at=T0,
    handoff_at=T0 + 720,
    progress=None,
    progress_version=0,
    shown_version=0,
    progress_route=None,
    progress_message_id=None,
    next_edit_at=None,
    final_shown=False,
    abandon_notified=False,
    channel_dead=None,
    coalesced=0,
    failures=0,
    due_at=T0,
    error_stage=None,
    error_message=None,
    result_status=None,
    body_hash="h",
)
CHANNEL = replace(
    BASE, status=RunStatus.HANDED_OFF, progress_route=Route.WEBHOOK, progress_message_id="m1"
)


@pytest.mark.parametrize(
    ("name", "run", "at", "expected"),
    [
        ("nothing new: wait for the hand-off", BASE, T0 + 1, Wait(T0 + 720)),
        ("new progress, edit allowed", replace(BASE, progress_version=1), T0 + 1, EditOriginal()),
        (
            "new progress within the interval: wait for it",
            replace(BASE, progress_version=2, shown_version=1, next_edit_at=T0 + 4),
            T0 + 2,
            Wait(T0 + 4),
        ),
        ("hand-off time", replace(BASE, progress_version=1), T0 + 720, HandOff()),
        (
            "token within its margin before the hand-off time",
            replace(BASE, handoff_at=T0 + 899),
            T0 + 841,
            HandOff(),
        ),
        (
            "handed off, no channel message yet",
            replace(CHANNEL, progress_message_id=None),
            T0 + 721,
            PostProgress(),
        ),
        (
            "no interaction: straight to the channel",
            replace(BASE, interaction=None, handoff_at=None),
            T0,
            PostProgress(),
        ),
        (
            "channel progress, edit allowed",
            replace(CHANNEL, progress_version=3, shown_version=2),
            T0 + 800,
            EditProgress(),
        ),
        ("channel quiet: wait for abandonment", CHANNEL, T0 + 800, Wait(T0 + 7200)),
        (
            "dead channel: only abandonment",
            replace(CHANNEL, channel_dead="webhook_deleted", progress_version=5),
            T0 + 800,
            Wait(T0 + 7200),
        ),
        ("silent too long", CHANNEL, T0 + 7200, Abandon()),
        (
            "abandoned, user not told",
            replace(CHANNEL, status=RunStatus.ABANDONED),
            T0 + 7200,
            NotifyAbandoned(),
        ),
        (
            "abandoned and told: the progress message shows it",
            replace(CHANNEL, status=RunStatus.ABANDONED, abandon_notified=True),
            T0 + 7200,
            ShowFinal(),
        ),
        (
            "finished: show the final state",
            replace(CHANNEL, status=RunStatus.FINISHED),
            T0 + 900,
            ShowFinal(),
        ),
        (
            "finished and shown: nothing more",
            replace(CHANNEL, status=RunStatus.FAILED, final_shown=True),
            T0 + 900,
            Wait(None),
        ),
        (
            "finished on @original while the token lives",
            replace(BASE, status=RunStatus.FINISHED, progress_route=Route.INTERACTION),
            T0 + 100,
            ShowFinal(),
        ),
        (
            "finished on @original after the token: nothing to edit",
            replace(BASE, status=RunStatus.FINISHED, progress_route=Route.INTERACTION),
            T0 + 900,
            Wait(None),
        ),
    ],
)
def test_plan(name: str, run: RunRecord, at: float, expected: Plan) -> None:
    assert plan(run, now=at, margin=MARGIN) == expected, name
