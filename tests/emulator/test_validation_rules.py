"""The cross-field rules as pure functions: no HTTP, tables and generated cases."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.testing.errors import DiscordError
from service.testing.validation import (
    has_something_to_send,
    mentions_are_safe,
    normalize,
    validate_body,
)

LIMITS = {
    "title": 256,
    "description": 4096,
    "footer": 2048,
    "author": 256,
    "name": 256,
    "value": 1024,
}


def texts(limit: int) -> st.SearchStrategy[int]:
    # Lengths clustered around the limit, where off-by-one faults live.
    return st.one_of(st.integers(0, 40), st.integers(limit - 2, limit + 2))


@st.composite
def embeds(draw: st.DrawFn) -> dict[str, Any]:
    embed: dict[str, Any] = {}
    for key in ("title", "description"):
        if draw(st.booleans()):
            embed[key] = "x" * draw(texts(LIMITS[key]))
    if draw(st.booleans()):
        embed["footer"] = {"text": "f" * draw(texts(LIMITS["footer"]))}
    if draw(st.booleans()):
        embed["author"] = {"name": "a" * draw(texts(LIMITS["author"]))}
    count = draw(st.integers(0, 3))
    embed["fields"] = [
        {"name": "n" * draw(st.integers(1, 258)), "value": "v" * draw(st.integers(1, 1026))}
        for _ in range(count)
    ]
    return embed


def expected_codes(payload: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """What Discord's rules say about these embeds: (dotted path, code) pairs."""
    found: set[tuple[str, str]] = set()
    total = 0
    for i, embed in enumerate(payload):
        parts = [
            ("title", embed.get("title"), LIMITS["title"]),
            ("description", embed.get("description"), LIMITS["description"]),
            ("footer.text", embed.get("footer", {}).get("text"), LIMITS["footer"]),
            ("author.name", embed.get("author", {}).get("name"), LIMITS["author"]),
        ]
        for j, fld in enumerate(embed["fields"]):
            parts.append((f"fields.{j}.name", fld["name"], LIMITS["name"]))
            parts.append((f"fields.{j}.value", fld["value"], LIMITS["value"]))
        for path, text, limit in parts:
            if text is not None:
                total += len(text)
                if len(text) > limit:
                    found.add((f"embeds.{i}.{path}", "BASE_TYPE_MAX_LENGTH"))
    if total > 6000:
        found.add(("embeds", "MAX_EMBED_SIZE_EXCEEDED"))
    return found


def refusal(payload: dict[str, Any]) -> set[tuple[str, str]]:
    try:
        validate_body(payload, [], kind="execute", schemas=None)
    except DiscordError as err:
        assert err.status == 400 and err.code == 50035
        assert err.errors is not None
        tree = err.errors.to_json()
        return {(path, e["code"]) for path in err.errors.paths() for e in _at(tree, path)}
    return set()


def _at(tree: dict[str, Any], dotted: str) -> list[dict[str, str]]:
    node = tree
    for key in dotted.split(".") if dotted else []:
        node = node[key]
    errors: list[dict[str, str]] = node["_errors"]
    return errors


@settings(max_examples=300, deadline=None)
@given(st.lists(embeds(), min_size=1, max_size=4))
def test_embed_limits_and_the_6000_total_hold_for_any_embeds(
    embed_list: list[dict[str, Any]],
) -> None:
    assert refusal({"embeds": embed_list}) == expected_codes(embed_list)


@pytest.mark.parametrize(
    ("payload", "files", "expected"),
    [
        ({"content": "x"}, 0, True),
        ({"content": " \n "}, 0, False),
        ({"embeds": []}, 0, False),
        ({"embeds": [{"title": "t"}]}, 0, True),
        ({"components": [{"type": 1}]}, 0, True),
        ({"poll": {"question": {"text": "q"}}}, 0, True),
        ({}, 1, True),
        ({}, 0, False),
    ],
)
def test_something_to_send(payload: dict[str, Any], files: int, expected: bool) -> None:
    assert has_something_to_send(payload, files) is expected


@pytest.mark.parametrize(
    ("payload", "safe"),
    [
        ({}, False),
        ({"allowed_mentions": None}, False),
        ({"allowed_mentions": {}}, False),
        ({"allowed_mentions": {"parse": ["everyone"]}}, False),
        ({"allowed_mentions": {"parse": []}}, True),
        ({"allowed_mentions": {"parse": [], "users": ["1"]}}, True),
    ],
)
def test_only_an_empty_parse_list_is_safe(payload: dict[str, Any], safe: bool) -> None:
    assert mentions_are_safe(payload) is safe


def test_normalize_trims_the_measured_texts_only() -> None:
    payload = {
        "content": " c ",
        "username": " u ",
        "avatar_url": " https://x ",
        "embeds": [{"title": " t ", "fields": [{"name": " n ", "value": " v "}], "url": " u "}],
    }
    assert normalize(payload) == {
        "content": "c",
        "username": "u",
        "avatar_url": " https://x ",
        "embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}], "url": " u "}],
    }
    assert payload["content"] == " c "  # the caller's body is left alone
