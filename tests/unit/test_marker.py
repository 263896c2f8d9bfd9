"""The marker line every delivered part ends with, and the nonce of a bot message."""

from __future__ import annotations

import pytest

from service.discord.limits import LIMITS
from service.discord.marker import (
    NONCE_LENGTH,
    carries_marker,
    marker,
    marker_room,
    message_nonce,
    with_marker,
)
from service.discord.render import render_result
from service.discord.split import fence_state

WORKFLOW = "wf_2026-12-03.run:7"


@pytest.mark.parametrize(
    ("part", "parts", "line"),
    [
        (0, 1, f"-# result `{WORKFLOW}`"),
        (0, 3, f"-# result `{WORKFLOW}` · part 1 of 3"),
        (2, 3, f"-# result `{WORKFLOW}` · part 3 of 3"),
    ],
)
def test_the_marker_names_the_result_and_the_part(part: int, parts: int, line: str) -> None:
    assert marker(WORKFLOW, part, parts) == line


@pytest.mark.parametrize(
    ("content", "line", "found"),
    [
        ("text\n-# result `a`", "-# result `a`", True),
        ("text\n-# result `a`  \n", "-# result `a`", True),  # Discord trims
        ("-# result `a`", "-# result `a`", True),
        ("text\n-# result `a` · part 1 of 2", "-# result `a`", False),
        ("text\n-# result `ab`", "-# result `a`", False),
        ("-# result `a`\nmore", "-# result `a`", False),
        (None, "-# result `a`", False),
    ],
)
def test_a_message_carries_a_marker_only_as_its_last_line(
    content: object, line: str, found: bool
) -> None:
    assert carries_marker(content, line) is found


def test_a_marker_after_an_open_code_block_closes_it_first() -> None:
    marked = with_marker({"content": "```py\nx = 1", "embeds": []}, "-# m")
    assert marked["content"] == "```py\nx = 1\n```\n-# m"
    assert list(marked) == ["content", "embeds"]
    assert with_marker({"embeds": []}, "-# m") == {"content": "-# m", "embeds": []}


def test_every_rendered_part_ends_with_its_marker_within_discords_limit() -> None:
    # given a message long enough for several parts, and a result with a mention
    text = "\n\n".join(f"paragraph {i}: " + "word " * 300 for i in range(6))
    parts = render_result(
        workflow_id=WORKFLOW,
        results={"summary": "ok", "nested": {"a": [1, 2]}},
        url=None,
        depth=None,
        message={"content": "```\n" + text + "\n```"},
        mention_user_id="334455667788990011",
        marked=True,
    )
    # then each part ends with its own marker, no content is over the limit, no block stays open
    assert len(parts) > 2
    for i, part in enumerate(parts):
        content = part.payload["content"]
        assert carries_marker(content, marker(WORKFLOW, i, len(parts)))
        assert len(content) <= LIMITS.content
        assert fence_state(content) is None
        assert part.payload["allowed_mentions"]["parse"] == []
    # and the same result renders to the same markers, the unmarked rendering to none
    again = render_result(
        workflow_id=WORKFLOW,
        results={"summary": "ok", "nested": {"a": [1, 2]}},
        url=None,
        depth=None,
        message={"content": "```\n" + text + "\n```"},
        mention_user_id="334455667788990011",
        marked=True,
    )
    assert [p.payload for p in again] == [p.payload for p in parts]
    plain = render_result(
        workflow_id=WORKFLOW,
        results={"summary": "ok"},
        url=None,
        depth=None,
        message=None,
    )
    assert "content" not in plain[0].payload


def test_the_marker_room_fits_the_longest_workflow_id_and_part_count() -> None:
    longest = "w" * 128
    assert marker_room(longest, 10) >= len("\n" + marker(longest, 9, 10))
    assert marker_room(longest, 10) < LIMITS.content // 5


BASE = {"tenant": "acme", "workflow_id": "wf", "created_at": 1_790_000_000.25}


def test_the_nonce_is_stable_and_fits_discord() -> None:
    nonce = message_nonce(**BASE, delivery_round=0, part=0)
    assert nonce == message_nonce(**BASE, delivery_round=0, part=0)
    assert len(nonce) <= NONCE_LENGTH


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "other"},
        {"workflow_id": "wf2"},
        {"created_at": 1_790_000_100.0},  # deleted and submitted again
        {"delivery_round": 1},  # redelivered
        {"part": 1},
    ],
)
def test_the_nonce_differs_for_another_result_delivery_or_part(change: dict[str, object]) -> None:
    args: dict[str, object] = {**BASE, "delivery_round": 0, "part": 0}
    changed = {**args, **change}
    assert message_nonce(**changed) != message_nonce(**args)  # type: ignore[arg-type]
