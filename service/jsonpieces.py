"""The JSON text of a large value in bounded pieces: exactly what ``json.dumps`` makes, from
many short C calls instead of one long one.

json's C encoder holds the GIL for a whole call, so a worker thread encoding a 24 MB result in
one go stops the event loop for 100-200 ms. Between the pieces made here the interpreter may
switch threads, and the loop keeps answering. Pieces also let a caller hash the text without
ever holding all of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")

# Containers longer than this are encoded a slice at a time; a slice of small items is a few
# tens of kilobytes of text, well under a millisecond of encoding.
BATCH = 256


def json_pieces(value: Any, *, sort_keys: bool = False, whole: bool = False) -> Iterator[str]:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)``
    as pieces whose concatenation is that very text. ``whole``: the caller knows the value is
    small (it came from a small body), so one piece, without looking for big parts."""
    if whole or not _holds_big(value):
        yield _dumps(value, sort_keys)
    elif isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else list(value.items())
        yield "{"
        for start in range(0, len(items), BATCH):
            if start:
                yield ","
            part = items[start : start + BATCH]
            if any(_holds_big(item) for _, item in part):
                for index, (key, item) in enumerate(part):
                    yield ("," if index else "") + _dumps(key, sort_keys) + ":"
                    yield from json_pieces(item, sort_keys=sort_keys)
            else:
                yield _dumps(dict(part), sort_keys)[1:-1]
        yield "}"
    else:
        yield "["
        for start in range(0, len(value), BATCH):
            if start:
                yield ","
            part = value[start : start + BATCH]
            if any(_holds_big(item) for item in part):
                for index, item in enumerate(part):
                    if index:
                        yield ","
                    yield from json_pieces(item, sort_keys=sort_keys)
            else:
                yield _dumps(part, sort_keys)[1:-1]
        yield "]"


def storable_json(value: Any, *, whole: bool = False) -> str:
    """The JSON text a store keeps for ``value``: compact, in pieces (see above; ``whole`` as
    there), and UTF-8 encodable whatever the value holds."""
    text = "".join(json_pieces(value, whole=whole))
    if _SURROGATE.search(text):  # a search, not an encode: no second copy of megabytes
        # A lone surrogate (JSON "\ud83d" decodes to one) has no UTF-8 form and neither driver
        # can store it; as an escape it loads back to the very same string.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text


def _holds_big(value: Any) -> bool:
    if isinstance(value, dict):
        return len(value) > BATCH or any(_holds_big(item) for item in value.values())
    if isinstance(value, list):
        return len(value) > BATCH or any(_holds_big(item) for item in value)
    return False


def _dumps(value: Any, sort_keys: bool) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
