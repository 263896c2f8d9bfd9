"""Whether a parsed JSON value can be stored and given back exactly, on every backend.

Python's ``json`` (and pydantic in Python mode) hands over values that no store can keep as
they came: a lone surrogate cannot be encoded as UTF-8, ``NaN`` and ``Infinity`` are not JSON
(PostgreSQL refuses them, and they would hash like ``null``), and an absurdly deep value makes
every recursive encoder fail. :func:`unfaithful` finds the first such place in one iterative walk,
so a deep value is refused without ever recursing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")

UNPAIRED_SURROGATE = "unpaired_surrogate"
NON_FINITE_NUMBER = "non_finite_number"
TOO_DEEP = "too_deep"

TOO_DEEP_MESSAGE = f"objects and arrays must not nest more than {MAX_DEPTH} deep"
_MESSAGES = {
    UNPAIRED_SURROGATE: "text must not contain unpaired surrogates (\\ud800-\\udfff alone)",
    NON_FINITE_NUMBER: "numbers must be finite: NaN, Infinity and -Infinity are not JSON",
    TOO_DEEP: TOO_DEEP_MESSAGE,
}


@dataclass(frozen=True, slots=True)
class Unfaithful:
    """Where a value breaks a rule: the code, a message that never repeats the value, and the
    path (object keys and array indexes) from the walked value down to the offending place."""

    code: str
    path: tuple[str | int, ...]

    @property
    def message(self) -> str:
        return _MESSAGES[self.code]

    def field(self, prefix: tuple[str | int, ...] = ()) -> str:
        """The path as ``results.scores.2``, surrogates in keys shown as escapes so the answer
        that names them can itself be encoded."""
        return ".".join(_printable(str(p)) for p in (*prefix, *self.path))


def _has_surrogate(text: str) -> bool:
    # isascii is the cheap answer for most strings; the search runs in C for the rest.
    return not text.isascii() and _SURROGATE.search(text) is not None


def _printable(text: str) -> str:
    if not _has_surrogate(text):
        return text
    return "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)


def _children(value: dict[Any, Any] | list[Any]) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, dict):
        return iter(value.items())
    return enumerate(value)


def unfaithful(value: Any, *, max_depth: int = MAX_DEPTH) -> Unfaithful | None:
    """The first place in ``value`` (in document order) that cannot be stored faithfully, or
    ``None``. ``value`` itself counts as depth 1 when it is an object or array.

    Python strings never hold a surrogate *pair* (the parser joins them), so any surrogate code
    point left in a string or key is unpaired."""
    # A stack of iterators instead of recursion: memory grows with depth, the call stack does not.
    path: list[str | int] = []
    stack: list[Iterator[tuple[str | int, Any]]] = []
    pending: Any = value
    while True:
        if isinstance(pending, str):
            if _has_surrogate(pending):
                return Unfaithful(UNPAIRED_SURROGATE, tuple(path))
        elif isinstance(pending, float):
            if not math.isfinite(pending):
                return Unfaithful(NON_FINITE_NUMBER, tuple(path))
        elif isinstance(pending, dict | list):
            if len(stack) >= max_depth:
                return Unfaithful(TOO_DEEP, tuple(path))
            stack.append(_children(pending))
            path.append("")  # replaced by the first child's key or index
        while stack:
            step = next(stack[-1], None)
            if step is not None:
                key, pending = step
                path[-1] = key
                if isinstance(key, str) and _has_surrogate(key):
                    return Unfaithful(UNPAIRED_SURROGATE, tuple(path))
                break
            stack.pop()
            path.pop()
        else:
            return None
