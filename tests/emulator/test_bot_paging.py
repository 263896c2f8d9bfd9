"""Get Channel Messages paging as pure functions: the query's checks and the page it cuts."""

from __future__ import annotations

import pytest

from service.testing.bot_routes import PageQuery, page_ids, parse_page_query
from service.testing.errors import DiscordError

IDS = [10, 20, 30, 40, 50]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (PageQuery(), [50, 40, 30, 20, 10]),
        (PageQuery(limit=2), [50, 40]),
        (PageQuery(after=20, limit=2), [40, 30]),  # the two right after, newest first
        (PageQuery(after=20), [50, 40, 30]),
        (PageQuery(before=40, limit=2), [30, 20]),  # the two right before
        (PageQuery(after=10, before=50), [40, 30, 20]),
        (PageQuery(after=50), []),
        (PageQuery(before=10), []),
    ],
)
def test_page_ids(query: PageQuery, expected: list[int]) -> None:
    assert page_ids(IDS, query) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, PageQuery()),
        ({"limit": "100"}, PageQuery(limit=100)),
        ({"limit": "1", "after": "5"}, PageQuery(after=5, limit=1)),
        ({"before": "1300000000000000001"}, PageQuery(before=1300000000000000001)),
    ],
)
def test_parse_page_query_accepts(raw: dict[str, str], expected: PageQuery) -> None:
    assert parse_page_query(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field", "code"),
    [
        ({"limit": "0"}, "limit", "NUMBER_TYPE_MIN"),
        ({"limit": "101"}, "limit", "NUMBER_TYPE_MAX"),
        ({"limit": "ten"}, "limit", "NUMBER_TYPE_COERCE"),
        ({"after": "x"}, "after", "NUMBER_TYPE_COERCE"),
        ({"before": "-1"}, "before", "NUMBER_TYPE_COERCE"),
    ],
)
def test_parse_page_query_refuses(raw: dict[str, str], field: str, code: str) -> None:
    with pytest.raises(DiscordError) as caught:
        parse_page_query(raw)
    assert (caught.value.status, caught.value.code) == (400, 50035)
    assert caught.value.body()["errors"][field]["_errors"][0]["code"] == code
