"""The renderings of a run's conversation: progress, hand-off and abandoned notices, each one
message Discord takes both as a new message and as an edit, whatever the view holds."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.discord.limits import LIMITS, violations
from service.discord.progress import (
    BAR_CELLS,
    ProgressView,
    RunState,
    abandoned_payload,
    format_duration,
    handoff_payload,
    progress_bar,
    progress_payload,
)
from service.discord.split import ELLIPSIS
from service.testing.schema import load_schemas
from service.testing.validation import validate_body
from tests.unit.test_render import USER, WF, _any_text

STATES: tuple[RunState, ...] = get_args(RunState)
# What an Edit Webhook Message body may hold: the same payload edits @original, edits a channel
# message and creates the channel's progress message, so nothing only Execute Webhook takes.
EDITABLE_KEYS = {"content", "embeds", "allowed_mentions"}

VIEW = ProgressView(
    workflow_id=WF,
    title="Fact check: moon landing",
    stage="Transcribing",
    current=3,
    total=10,
    note="chunk 3 of 10",
    elapsed_seconds=725.4,
    state="running",
)


def assert_sendable(payload: dict[str, Any], mention: str | None = None) -> None:
    """Within every limit, valid against Discord's own schema as a new message and as an edit,
    and pinging nobody but ``mention``."""
    assert violations(payload) == []
    assert set(payload) <= EDITABLE_KEYS
    schemas = load_schemas()
    assert schemas is not None
    for kind in ("execute", "followup", "edit"):
        # Raises Discord's own 50035 error for anything Discord's schema or limits refuse.
        validate_body(payload, [], kind=kind, schemas=schemas)
    expected = {"parse": [], "users": [mention]} if mention else {"parse": []}
    assert payload["allowed_mentions"] == expected
    json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")


def embed_of(payload: dict[str, Any]) -> dict[str, Any]:
    (embed,) = payload["embeds"]
    assert isinstance(embed, dict)
    return embed


# -- the bar and the durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [
        (3, 10, "▰▰▰▱▱▱▱▱▱▱▱▱ 3/10"),
        (0, 10, "▱▱▱▱▱▱▱▱▱▱▱▱ 0/10"),
        (None, 10, "▱▱▱▱▱▱▱▱▱▱▱▱ 0/10"),
        (10, 10, "▰▰▰▰▰▰▰▰▰▰▰▰ 10/10"),
        (9, 10, "▰▰▰▰▰▰▰▰▰▰▱▱ 9/10"),  # floored: full only when done
        (99, 100, "▰▰▰▰▰▰▰▰▰▰▰▱ 99/100"),
        (1, 1000, "▱▱▱▱▱▱▱▱▱▱▱▱ 1/1000"),
        (15, 10, "▰▰▰▰▰▰▰▰▰▰▰▰ 10/10"),  # past the total: clamped
        (-4, 10, "▱▱▱▱▱▱▱▱▱▱▱▱ 0/10"),
        (1, 1, "▰▰▰▰▰▰▰▰▰▰▰▰ 1/1"),
        (5, 10**20, "▱▱▱▱▱▱▱▱▱▱▱▱ 5/~10^20"),
        (3, None, None),  # no total: just the stage
        (3, 0, None),
        (None, None, None),
    ],
)
def test_progress_bar(current: int | None, total: int | None, expected: str | None) -> None:
    assert progress_bar(current, total) == expected


def test_progress_bar_has_a_fixed_width() -> None:
    for current in range(0, 18):
        bar = progress_bar(current, 17)
        assert bar is not None
        assert len(bar.split(" ")[0]) == BAR_CELLS


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0 s"),
        (0.9, "0 s"),
        (45, "45 s"),
        (59.99, "59 s"),
        (60, "1 min 00 s"),
        (185, "3 min 05 s"),
        (725.4, "12 min 05 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 00 min"),
        (3720, "1 h 02 min"),
        (7200, "2 h 00 min"),
        (86399, "23 h 59 min"),
        (86400, "1 d 00 h"),
        (183600, "2 d 03 h"),
        (-5, "0 s"),
        (float("nan"), "0 s"),
        (float("inf"), "999 d 00 h"),
        (1e300, "999 d 00 h"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


# -- each state ------------------------------------------------------------------------------------


def test_a_running_view_shows_title_stage_bar_note_and_elapsed_time() -> None:
    payload = progress_payload(VIEW)
    assert_sendable(payload)
    embed = embed_of(payload)
    assert embed["title"] == "Fact check: moon landing"
    assert embed["description"] == (
        "**Transcribing**\n▰▰▰▱▱▱▱▱▱▱▱▱ 3/10\nchunk 3 of 10\nElapsed: 12 min 05 s"
    )
    assert embed["footer"]["text"] == f"workflow {WF}"
    assert "content" not in payload


def test_a_view_without_a_total_shows_the_stage_without_a_bar() -> None:
    view = replace(VIEW, current=None, total=None, note=None, title=None)
    embed = embed_of(progress_payload(view))
    assert embed["title"] == "Analysis running"
    assert embed["description"] == "**Transcribing**\nElapsed: 12 min 05 s"


def test_a_view_before_any_progress_shows_only_the_elapsed_time() -> None:
    view = replace(VIEW, stage=None, current=None, total=None, note=None, elapsed_seconds=4)
    payload = progress_payload(view)
    assert_sendable(payload)
    assert embed_of(payload)["description"] == "Elapsed: 4 s"


@pytest.mark.parametrize(
    ("state", "title", "description"),
    [
        (
            "running",
            "Analysis running",
            "**Transcribing**\n▰▰▰▱▱▱▱▱▱▱▱▱ 3/10\nElapsed: 12 min 05 s",
        ),
        (
            "handed_off",
            "Analysis running",
            "**Transcribing**\n▰▰▰▱▱▱▱▱▱▱▱▱ 3/10\nElapsed: 12 min 05 s",
        ),
        ("finished", "Analysis complete", "Done after 12 min 05 s."),
        (
            "failed",
            "Analysis failed",
            "Failed during **Download** after 12 min 05 s.\nHTTP 403 from the video host",
        ),
        (
            "abandoned",
            "Analysis stopped",
            "Stopped without a result after 12 min 05 s.\nLast stage: **Transcribing**",
        ),
    ],
)
def test_each_state_renders_its_final_or_running_text(
    state: RunState, title: str, description: str
) -> None:
    view = replace(
        VIEW,
        title=None,
        note=None,
        state=state,
        error_stage="Download",
        error_message="HTTP 403 from the video host",
    )
    payload = progress_payload(view)
    assert_sendable(payload)
    embed = embed_of(payload)
    assert (embed["title"], embed["description"]) == (title, description)


def test_a_failure_without_its_own_stage_names_the_last_progress_stage() -> None:
    view = replace(VIEW, state="failed", error_stage=None, error_message=None)
    description = embed_of(progress_payload(view))["description"]
    assert description == "Failed during **Transcribing** after 12 min 05 s."


def test_states_have_distinct_colours_for_running_done_failed_and_stopped() -> None:
    colours = {s: embed_of(progress_payload(replace(VIEW, state=s)))["color"] for s in STATES}
    assert colours["running"] == colours["handed_off"]
    assert len({colours[s] for s in ("running", "finished", "failed", "abandoned")}) == 4


@pytest.mark.parametrize(
    ("field", "limit"),
    [("title", LIMITS.title), ("stage", 200), ("note", 1000), ("error_message", 2000)],
)
def test_over_long_texts_are_cut_with_an_ellipsis(field: str, limit: int) -> None:
    view = replace(VIEW, state="failed" if field == "error_message" else "running")
    long: dict[str, Any] = {field: "word " * 3000}
    view = replace(view, **long)
    payload = progress_payload(view)
    assert_sendable(payload)
    embed = embed_of(payload)
    shown = embed["title"] if field == "title" else embed["description"]
    cut = next(part for part in shown.replace("**", "\n").split("\n") if ELLIPSIS in part)
    assert cut.endswith("word" + ELLIPSIS)
    assert len(cut) <= limit


def test_mentions_in_texts_never_ping() -> None:
    view = replace(VIEW, stage="@everyone", note=f"<@{USER}> <@&{USER}> @here")
    payload = progress_payload(view)
    assert_sendable(payload)
    assert "@everyone" in embed_of(payload)["description"]  # shown as it is, but parse is []


def test_lone_surrogates_become_replacement_characters() -> None:
    payload = progress_payload(replace(VIEW, stage="a\ud83db", note="\ud83d\ude00"))
    assert_sendable(payload)
    assert embed_of(payload)["description"].startswith("**a\ufffdb**")
    assert "😀" in embed_of(payload)["description"]


# -- hand-off --------------------------------------------------------------------------------------


def test_handoff_says_where_the_result_will_come_and_how_to_fetch_it() -> None:
    payload = handoff_payload(
        workflow_id=WF, title=None, where="in <#123456789012345678>", view=None
    )
    assert_sendable(payload)
    embed = embed_of(payload)
    assert embed["title"] == "Analysis running"
    assert "the result will come in <#123456789012345678>." in embed["description"]
    assert f"`/retrieve_results workflow_id:{WF}`" in embed["description"]


def test_handoff_keeps_the_last_progress_it_had_shown() -> None:
    payload = handoff_payload(
        workflow_id=WF, title=VIEW.title, where="by direct message", view=VIEW
    )
    assert_sendable(payload)
    embed = embed_of(payload)
    assert embed["title"] == VIEW.title
    assert "the result will come by direct message." in embed["description"]
    assert embed["description"].endswith("**Transcribing**\n▰▰▰▱▱▱▱▱▱▱▱▱ 3/10\nchunk 3 of 10")


# -- abandoned -------------------------------------------------------------------------------------


def test_abandoned_notice_mentions_the_requester_only_through_allowed_mentions() -> None:
    payload = abandoned_payload(
        workflow_id=WF, title="Fact check", silent_seconds=7200, mention_user_id=USER
    )
    assert_sendable(payload, mention=USER)
    assert payload["content"] == f"<@{USER}>"
    embed = embed_of(payload)
    assert embed["title"] == "Fact check"
    assert "stopped without a result" in embed["description"]
    assert "2 h 00 min" in embed["description"]
    assert f"`/retrieve_results workflow_id:{WF}`" in embed["description"]


@pytest.mark.parametrize("mention", [None, "", "not-a-snowflake", "@everyone"])
def test_abandoned_notice_without_a_usable_requester_mentions_nobody(mention: str | None) -> None:
    payload = abandoned_payload(
        workflow_id=WF, title=None, silent_seconds=90, mention_user_id=mention
    )
    assert_sendable(payload)
    assert "content" not in payload
    assert embed_of(payload)["title"] == "Analysis stopped"


# -- properties ------------------------------------------------------------------------------------

_maybe_text = st.none() | _any_text
_numbers = st.none() | st.integers() | st.integers(min_value=10**100, max_value=10**4000)
_seconds = st.floats() | st.integers(-(10**6), 10**12)
_views = st.builds(
    ProgressView,
    workflow_id=st.sampled_from([WF, "a", "x" * 128]) | _any_text.filter(str.strip),
    title=_maybe_text,
    stage=_maybe_text,
    current=_numbers,
    total=_numbers,
    note=_maybe_text,
    elapsed_seconds=_seconds,
    state=st.sampled_from(STATES),
    error_stage=_maybe_text,
    error_message=_maybe_text,
)


@settings(max_examples=200, deadline=None)
@given(view=_views)
def test_any_view_renders_within_every_limit(view: ProgressView) -> None:
    payload = progress_payload(view)
    assert_sendable(payload)
    assert payload == progress_payload(view)


@settings(max_examples=100, deadline=None)
@given(view=st.none() | _views, where=_any_text, title=_maybe_text, workflow_id=_any_text)
def test_any_handoff_renders_within_every_limit(
    view: ProgressView | None, where: str, title: str | None, workflow_id: str
) -> None:
    assert_sendable(handoff_payload(workflow_id=workflow_id, title=title, where=where, view=view))


@settings(max_examples=100, deadline=None)
@given(
    title=_maybe_text,
    workflow_id=_any_text,
    seconds=_seconds,
    mention=st.sampled_from([None, USER, "not-a-snowflake"]),
)
def test_any_abandoned_notice_renders_within_every_limit(
    title: str | None, workflow_id: str, seconds: float, mention: str | None
) -> None:
    payload = abandoned_payload(
        workflow_id=workflow_id, title=title, silent_seconds=seconds, mention_user_id=mention
    )
    assert_sendable(payload, mention=USER if mention == USER else None)
