"""How a listing's text becomes a ``LIKE`` pattern: ASCII letters lowered, wildcards literal."""

from __future__ import annotations

import pytest

from service.store.base import LIKE_ESCAPE, like_pattern
from service.store.postgres_queries import LIST_RESULTS_FILTERS
from service.store.sqlite import _LISTING_TESTS


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("wf", "%wf%"),
        ("Nightly-BUILD", "%nightly-build%"),
        ("50%", "%50\\%%"),
        ("wf_1", "%wf\\_1%"),
        ("C:\\runs", "%c:\\\\runs%"),
        ("\\%_", "%\\\\\\%\\_%"),
        ("ÉTAPE", "%Étape%"),  # only ASCII letters fold, as SQLite's lower() does
        ("ß", "%ß%"),
    ],
)
def test_like_pattern(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


def test_both_backends_name_the_same_escape_character() -> None:
    escape = f"ESCAPE '{LIKE_ESCAPE}'"
    for test in (LIST_RESULTS_FILTERS["text"], _LISTING_TESTS["text"][0]):
        assert test.count(escape) == test.count("LIKE") == 2
