"""JSON in bounded pieces: the very text json.dumps makes, and the body hash it feeds."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import jsonpieces
from service.api.intake import body_hash
from service.api.schemas import ResultCreate
from service.jsonpieces import json_pieces
from tests.support import submission

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=7) | st.dictionaries(st.text(max_size=5), children, max_size=7)
    ),
    max_leaves=60,
)


def dumps(value: Any, sort_keys: bool) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


@settings(max_examples=300)
@given(value=json_values, sort_keys=st.booleans())
def test_pieces_join_to_what_json_dumps_makes(value: Any, sort_keys: bool) -> None:
    # given containers longer than a (tiny) batch, nested any way
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonpieces, "BATCH", 2)
        # when the value is encoded in pieces
        pieces = list(json_pieces(value, sort_keys=sort_keys))
    # then together they are json.dumps's text
    assert "".join(pieces) == dumps(value, sort_keys)


@pytest.mark.parametrize(
    ("value", "most_pieces"),
    [
        ({"a": 1, "b": [1, 2]}, 1),  # small: one call, the fast path
        (list(range(10_000)), 2 * (10_000 // jsonpieces.BATCH) + 3),
        ({"deep": {"list": [{"n": i} for i in range(5_000)]}}, 200),
    ],
    ids=["small", "long-list", "nested-long-list"],
)
def test_large_values_come_in_bounded_pieces(value: Any, most_pieces: int) -> None:
    pieces = list(json_pieces(value))
    assert len(pieces) <= most_pieces
    assert max(len(p) for p in pieces) <= 64 * 1024
    assert "".join(pieces) == dumps(value, False)


def former_body_hash(payload: ResultCreate) -> str:
    """The hash as stored results were given it before: a new formula would turn every resent
    result into a 409."""
    canonical = json.dumps(
        payload.model_dump(mode="json", exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "results",
    [
        {"summary": "All clear", "deception_score": 0.12},
        {"nested": {"none": None, "list": [None, {"z": None}], "emoji": "😀 é"}},
        {"big": 2**80, "small": -1e-7, "flag": False, "long": list(range(2_000))},
        {"b": 1, "a": {"d": 2, "c": 3}},
    ],
    ids=["plain", "nulls-and-unicode", "numbers-and-long-list", "key-order"],
)
def test_body_hash_is_the_one_stored_results_already_have(results: dict[str, Any]) -> None:
    payload = ResultCreate.model_validate(
        submission("wf_hash", results=results, message={"content": "hi", "embeds": []})
    )
    assert body_hash(payload) == former_body_hash(payload)
