"""The pure parts of the body edge: the in-flight budget, and which bodies are read as JSON."""

from __future__ import annotations

import pytest

from service.api.body import _is_json
from service.middleware import ByteBudget


@pytest.mark.parametrize(
    ("steps", "used"),
    [
        ([("take", 60, True), ("take", 40, True)], 100),
        ([("take", 60, True), ("take", 41, False)], 60),
        ([("take", 101, False)], 0),
        ([("take", 60, True), ("give", 60, None), ("take", 100, True)], 100),
    ],
    ids=["fills-exactly", "refuses-past-capacity", "refuses-one-too-large", "gives-back"],
)
def test_byte_budget(steps: list[tuple[str, int, bool | None]], used: int) -> None:
    budget = ByteBudget(100)
    for action, amount, expected in steps:
        if action == "take":
            assert budget.take(amount) is expected
        else:
            budget.give_back(amount)
    assert budget.used == used


@pytest.mark.parametrize(
    ("content_type", "as_json"),
    [
        (None, True),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_bodies_are_read_as_json_as_fastapi_reads_them(
    content_type: str | None, as_json: bool
) -> None:
    assert _is_json(content_type) is as_json
