"""What ``/retrieve_results`` reads and shows: its time options, the listing, a run, the
autocomplete choices. Plain functions over values, tested by tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot_client._models import ResultSummary, Run
from bot_client._retrieve import (
    CHOICE_LIMIT,
    CHOICES_LIMIT,
    SINCE_AFTER_UNTIL,
    Entry,
    Query,
    WhenError,
    choices,
    contains,
    entries,
    parse_when,
    read_options,
    render_listing,
    render_run,
    run_state,
    search_text,
)

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def at(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def result(workflow_id: str, created: datetime = NOW, **fields: Any) -> ResultSummary:
    return ResultSummary.model_validate(
        {
            "workflow_id": workflow_id,
            "status": "delivered",
            "created_at": created,
            "updated_at": created,
            "retrieval_info": {"command": f"/retrieve_results workflow_id:{workflow_id}"},
            **fields,
        }
    )


def run(workflow_id: str, created: datetime = NOW, **fields: Any) -> Run:
    return Run.model_validate(
        {
            "workflow_id": workflow_id,
            "status": "running",
            "created_at": created,
            "updated_at": created,
            "timeout_seconds": 7200,
            **fields,
        }
    )


def progress(stage: str, current: int | None = None, total: int | None = None) -> dict[str, Any]:
    return {"stage": stage, "current": current, "total": total, "updated_at": NOW}


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("30m", False, at(minutes=30)),
        ("6h", False, at(hours=6)),
        ("2d", False, at(days=2)),
        (" 1W ", False, at(weeks=1)),
        ("2 d", False, at(days=2)),
        ("2026-12-01", False, datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01", True, datetime(2026, 12, 2, tzinfo=UTC)),  # until a date: all of it
        ("2026-12-01T14:30", False, datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("2026-12-01T14:30", True, datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("2026-12-01T14:30:00Z", False, datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        (
            "2026-12-01T14:30+02:00",
            False,
            datetime(2026, 12, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_parse_when_reads_dates_times_and_ages(
    text: str, end_of_day: bool, expected: datetime
) -> None:
    assert parse_when(text, now=NOW, end_of_day=end_of_day) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2d ago", "-2d", "2y", "30", "m", "2026-13-01", "", "`x` @everyone"]
)
def test_parse_when_refuses_anything_else_in_words(text: str) -> None:
    with pytest.raises(WhenError) as caught:
        parse_when(text, now=NOW)
    message = str(caught.value)
    assert "2026-12-01" in message and "30m" in message
    assert message.count("`") == 2  # the value cannot break out of its code span


@pytest.mark.parametrize(
    ("url", "since", "until", "expected"),
    [
        (None, None, None, Query()),
        ("youtube", "2d", None, Query(url="youtube", since=at(days=2))),
        (" ", None, None, Query()),  # blank is no filter
        (
            None,
            "2026-12-01",
            "2026-12-01",
            Query(since=at(days=2, hours=10), until=at(days=1, hours=10)),
        ),
        (None, "1d", "2d", SINCE_AFTER_UNTIL),
        (None, "2026-12-02T00:00", "2026-12-01", SINCE_AFTER_UNTIL),
        (None, "soon", None, "`soon` is not a time I understand."),
    ],
)
def test_read_options(
    url: str | None, since: str | None, until: str | None, expected: Query | str
) -> None:
    got = read_options(url, since, until, now=NOW)
    if isinstance(expected, str) and isinstance(got, str):
        assert got.startswith(expected)
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("haystack", "needle", "expected"),
    [
        ("https://YouTube.com/x", "youtube", True),
        ("wf_Nightly", "NIGHTLY", True),
        ("https://x/ÉTAPE", "étape", False),  # only ASCII letters fold, as on the service
        ("https://x/50%", "50%", True),
        (None, "x", False),
    ],
)
def test_contains_follows_the_services_rule(
    haystack: str | None, needle: str, expected: bool
) -> None:
    assert contains(haystack, needle) is expected


@pytest.mark.parametrize(
    ("typed", "q"), [("", None), ("   ", None), (" wf_1 ", "wf_1"), ("x" * 120, "x" * 100)]
)
def test_search_text(typed: str, q: str | None) -> None:
    assert search_text(typed) == q


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "running"),
        ({"progress": progress("download")}, "running download"),
        ({"progress": progress("analysing", 3, 10)}, "running analysing 3/10"),
        ({"progress": progress("analysing", 3)}, "running analysing 3"),
        ({"status": "handed_off", "progress": progress("x", 1, 2)}, "handed off x 1/2"),
        ({"status": "finished", "progress": progress("x", 2, 2)}, "finished"),
        ({"status": "abandoned"}, "abandoned"),
        ({"progress": progress("s" * 100)}, "running " + "s" * 39 + "…"),
    ],
)
def test_run_state(fields: dict[str, Any], expected: str) -> None:
    assert run_state(run("r", **fields)) == expected


def test_entries_merge_a_run_and_its_result_newest_first() -> None:
    # given a run whose result came in, a run still going, and a result without a run
    listed = entries(
        [result("wf_done", at(hours=1)), result("wf_alone", at(hours=3))],
        [
            run("wf_done", at(hours=2), status="finished"),
            run("wf_going", at(hours=2, minutes=30), progress=progress("a", 1, 4)),
        ],
    )
    # then one entry per id, ordered by the newer of its two times
    assert [(e.workflow_id, e.status()) for e in listed] == [
        ("wf_done", "result delivered · run finished"),
        ("wf_going", "run running a 1/4"),
        ("wf_alone", "result delivered"),
    ]


@pytest.mark.parametrize(
    ("listed", "filtered", "expected"),
    [
        ([], False, "You have no results or runs right now."),
        ([], True, "You have no results or runs matching those options."),
    ],
)
def test_an_empty_listing_says_so(listed: list[Entry], filtered: bool, expected: str) -> None:
    assert render_listing(listed, filtered=filtered) == expected


def test_a_listing_shows_status_progress_and_url_and_stays_within_a_message() -> None:
    # given more long entries than fit in one message
    many = [
        Entry(f"wf_{n}_" + "x" * 100, result=result(f"wf_{n}", url="https://e/" + "u" * 400))
        for n in range(30)
    ]
    going = Entry("wf_going", run=run("wf_going", progress=progress("analysing", 3, 10)))
    # when it is rendered
    text = render_listing([going, *many], filtered=False)
    # then it fits Discord's 2000 characters, newest first, and ends with how to show one
    assert len(text) <= 2000
    lines = text.splitlines()
    assert lines[0] == "Your results and runs, newest first:"
    assert lines[1] == f"• `wf_going` <t:{int(NOW.timestamp())}:R> run running analysing 3/10"
    assert lines[2].endswith("result delivered <https://e/" + "u" * 189 + "…>")
    assert 3 < len(lines) < 31
    assert lines[-1] == "Show one with `/retrieve_results workflow_id:<id>`."


def test_a_listing_keeps_ids_inside_their_code_span() -> None:
    text = render_listing([Entry("x` @everyone `y", result=result("x"))], filtered=False)
    assert "`x' @everyone 'y`" in text


@pytest.mark.parametrize(
    ("fields", "lines"),
    [
        (
            {"title": "Video analysis", "progress": progress("analysing", 3, 10)},
            [
                "**Run `wf_r`** (running analysing 3/10)",
                "Title: Video analysis",
                f"Started: <t:{int(NOW.timestamp())}:f>",
                "Its result is not in yet: ask again when it has finished.",
            ],
        ),
        (
            {"status": "failed", "error": {"stage": "download", "message": "404"}},
            [
                "**Run `wf_r`** (failed)",
                f"Started: <t:{int(NOW.timestamp())}:f>",
                "Failed at download: 404",
            ],
        ),
        (
            {"status": "abandoned", "url": "https://e/v"},
            [
                "**Run `wf_r`** (abandoned)",
                "Source: <https://e/v>",
                f"Started: <t:{int(NOW.timestamp())}:f>",
            ],
        ),
    ],
)
def test_render_run(fields: dict[str, Any], lines: list[str]) -> None:
    assert render_run(run("wf_r", **fields)).splitlines() == lines


def test_choices_are_the_matching_ids_newest_first_within_discords_limits() -> None:
    # given 40 entries, one with an id too long for a choice's value, one with a long status
    listed = [Entry(f"wf_{n:02}", result=result(f"wf_{n:02}")) for n in range(40)]
    long_id = Entry("wf_" + "l" * 120, result=result("wf_long"))
    long_status = Entry("wf_s" + "s" * 95, run=run("x", progress=progress("stage", 1, 2)))
    found = choices([long_id, long_status, *listed], "")
    # then at most 25, the too-long id left out, every label and value within 100 characters
    assert len(found) == CHOICES_LIMIT
    assert found[0] == ("wf_s" + "s" * 95 + "…", "wf_s" + "s" * 95)
    assert [value for _, value in found[1:]] == [f"wf_{n:02}" for n in range(24)]
    assert all(0 < len(label) <= CHOICE_LIMIT for label, _ in found)
    assert all(len(value) <= CHOICE_LIMIT for _, value in found)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("", ["Nightly_1", "weekly"]),
        ("night", ["Nightly_1"]),
        ("EXAMPLE.COM/W", ["weekly"]),  # in the URL
        ("nothing", []),
    ],
)
def test_choices_hold_what_was_typed_in_the_id_or_url(typed: str, expected: list[str]) -> None:
    listed = [
        Entry("Nightly_1", result=result("Nightly_1")),
        Entry("weekly", run=run("weekly", url="https://example.com/w")),
    ]
    assert [value for _, value in choices(listed, typed)] == expected
