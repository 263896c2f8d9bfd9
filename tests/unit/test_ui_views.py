"""The dashboard's pure presentation: the activity chart, ages, colours, reasons, filters."""

from __future__ import annotations

import pytest

from service.domain import AttemptCount, AttemptOutcome, RunStatus, Status
from service.ui.views import Slot, activity, age, chart, colour, explain, read_listing


def count(slot: int, outcome: str, n: int) -> AttemptCount:
    return AttemptCount(slot=slot, outcome=AttemptOutcome(outcome), count=n)


def test_activity_counts_deliveries_and_failures_per_slot() -> None:
    series = activity(
        [
            count(0, "delivered", 2),
            count(0, "retry", 1),
            count(1, "rate_limited", 5),  # waited out: not a failure
            count(1, "fallback", 1),  # the webhook took over: not a failure
            count(2, "dead_webhook", 1),
            count(3, "delivered", 1),  # at the very end of the window
            count(4, "delivered", 9),  # outside it
            count(-1, "delivered", 9),
        ],
        slots=3,
    )
    assert series == [Slot(2, 1), Slot(0, 0), Slot(1, 1)]


def test_chart_stacks_failures_on_deliveries_scaled_to_the_busiest_slot() -> None:
    drawn = chart([Slot(2, 2), Slot(0, 0), Slot(1, 0)], width=300, height=100)
    assert (drawn.peak, drawn.delivered, drawn.failed) == (4, 3, 2)
    assert [(b.kind, b.x, b.y, b.height) for b in drawn.bars] == [
        ("delivered", 0.0, 50.0, 50.0),
        ("failed", 0.0, 0.0, 50.0),
        ("delivered", 200.0, 75.0, 25.0),
    ]
    assert drawn.bars[0].label == "2 delivered, 3 min ago"
    assert chart([Slot(), Slot()]).bars == []


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (-5, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (86400, "1 d"),
        (2 * 86400 + 4 * 3600 + 59, "2 d 4 h"),
    ],
)
def test_age(seconds: float, said: str) -> None:
    assert age(seconds) == said


@pytest.mark.parametrize(
    ("value", "css"),
    [
        (0x3BA55C, "#3ba55c"),
        (0, "#000000"),
        (None, "#4f545c"),
        (True, "#4f545c"),
        (0x1000000, "#4f545c"),
        ("red", "#4f545c"),
    ],
)
def test_colour(value: object, css: str) -> None:
    assert colour(value) == css


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (None, ""),
        ("webhook_deleted", "Discord says the webhook was deleted (Unknown Webhook)."),
        (
            "discord_refused_400_50035",
            "Discord refused the message for good (HTTP 400, Discord code 50035).",
        ),
        ("discord_refused_403", "Discord refused the message for good (HTTP 403)."),
        ("something_new", "something_new"),
    ],
)
def test_explain(reason: str | None, said: str) -> None:
    assert explain(reason) == said


def test_read_listing_takes_valid_filters_and_names_the_rest() -> None:
    listing = read_listing(
        {
            "status": "orphaned",
            "q": " abc ",
            "requester_id": "334455667788990011",
            "since": "2026-01-31T13:45",
            "until": "2026-02-01T00:00:00+01:00",
            "cursor": "c1",
        },
        Status,
    )
    assert (listing.status, listing.text, listing.requester_id, listing.cursor) == (
        "orphaned",
        "abc",
        "334455667788990011",
        "c1",
    )
    assert listing.since == 1769867100.0  # 13:45 UTC
    assert listing.until == 1769900400.0  # 23:00 UTC
    assert listing.errors == ()
    wrong = read_listing(
        {"status": "delivered", "requester_id": "12", "until": "soon", "q": "x" * 101}, RunStatus
    )
    assert (wrong.status, wrong.requester_id, wrong.until, wrong.text) == (None, None, None, None)
    assert len(wrong.errors) == 4
    assert wrong.form["until"] == "soon"  # shown back as typed
