"""Which parsed JSON values a store can keep and give back exactly (``service.api.faithful``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.api.faithful import (
    MAX_DEPTH,
    NON_FINITE_NUMBER,
    TOO_DEEP,
    UNPAIRED_SURROGATE,
    Unfaithful,
    unfaithful,
)


def nested(depth: int) -> Any:
    """``depth`` arrays one inside the other."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, None),
        ({"a": [1, 2.5, -0.0, "text", None, True, {"b": "é😀"}]}, None),
        ("plain", None),
        (10**30, None),
        ("\ud800", Unfaithful(UNPAIRED_SURROGATE, ())),
        ({"scores": [1, 2, "x\udfffy"]}, Unfaithful(UNPAIRED_SURROGATE, ("scores", 2))),
        ({"ok": 1, "k\ud83d": 1}, Unfaithful(UNPAIRED_SURROGATE, ("k\ud83d",))),
        ({"scores": [1.0, 2.0, float("nan")]}, Unfaithful(NON_FINITE_NUMBER, ("scores", 2))),
        ({"a": {"b": float("inf")}}, Unfaithful(NON_FINITE_NUMBER, ("a", "b"))),
        ([float("-inf")], Unfaithful(NON_FINITE_NUMBER, (0,))),
        # the first problem in document order wins
        ({"a": float("nan"), "b": "\ud800"}, Unfaithful(NON_FINITE_NUMBER, ("a",))),
        (nested(MAX_DEPTH), None),
        (nested(MAX_DEPTH + 1), Unfaithful(TOO_DEEP, (0,) * MAX_DEPTH)),
        ({"a": nested(MAX_DEPTH)}, Unfaithful(TOO_DEEP, ("a", *(0,) * (MAX_DEPTH - 1)))),
        ([[], {}, [[]]], None),
    ],
)
def test_unfaithful_finds_the_first_unstorable_place(
    value: Any, expected: Unfaithful | None
) -> None:
    assert unfaithful(value) == expected


def test_a_value_far_deeper_than_the_stack_is_refused_without_recursion() -> None:
    # given a value nested 100 times deeper than Python's default recursion limit
    deep = nested(100_000)
    # when it is checked, then the walk stops at the limit instead of raising RecursionError
    found = unfaithful(deep)
    assert found is not None and found.code == TOO_DEEP
    assert len(found.path) == MAX_DEPTH


def test_field_names_the_place_and_escapes_surrogates_so_it_can_be_sent() -> None:
    found = Unfaithful(UNPAIRED_SURROGATE, ("scores", 2, "k\ud800"))
    field = found.field(("results",))
    assert field == "results.scores.2.k\\ud800"
    field.encode("utf-8")  # would raise on a surrogate


def test_messages_never_repeat_the_value() -> None:
    for code in (UNPAIRED_SURROGATE, NON_FINITE_NUMBER, TOO_DEEP):
        assert Unfaithful(code, ()).message


def test_json_round_trip_of_every_faithful_value_is_exact() -> None:
    value = {"a": [1, 2.5, "é😀", {"b": None}], "c": nested(MAX_DEPTH - 1)}
    assert unfaithful(value) is None
    assert json.loads(json.dumps(value, allow_nan=False)) == value
