"""Snowflake shapes and the times they carry."""

from __future__ import annotations

import re

import pytest

from service.discord.snowflake import (
    SNOWFLAKE_PATTERN,
    interaction_expires_at,
    is_snowflake,
    snowflake_at,
    snowflake_time,
)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("175928847299117063", True),
        ("1" * 17, True),
        ("18446744073709551615", True),
        ("18446744073709551616", False),
        ("1" * 16, False),
        ("1" * 21, False),
        ("12345678901234567a", False),
        ("-12345678901234567", False),
        ("", False),
        ("0" + "1" * 16, False),  # leading zeros: one id must have one spelling
        ("0" + "1" * 19, False),
        ("0" * 17, False),
        ("01844674407370955161", False),
        ("10000000000000000", True),
    ],
)
def test_snowflake_shape(value: str, ok: bool) -> None:
    assert is_snowflake(value) is ok
    # the pattern the API publishes says the same
    assert (re.fullmatch(SNOWFLAKE_PATTERN, value) is not None) is ok


def test_snowflake_time_matches_discords_documented_example() -> None:
    # Discord's docs: 175928847299117063 was created at 2016-04-30 11:18:25.796 UTC.
    assert snowflake_time("175928847299117063") == pytest.approx(1462015105.796)


def test_interaction_token_lives_fifteen_minutes() -> None:
    created = 1_790_000_000.0
    assert interaction_expires_at(snowflake_at(created)) == pytest.approx(created + 900, abs=0.001)
