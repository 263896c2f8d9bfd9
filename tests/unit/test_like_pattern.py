"""How a listing's text becomes a ``LIKE`` pattern: ASCII letters lowered, wildcards literal."""

from __future__ import annotations

import pytest

from service.store.base import like_pattern


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
