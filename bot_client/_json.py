"""What JSON can carry faithfully, checked before a body is sent or spooled.

``json.dumps`` and pydantic accept more than JSON can hold: NaN and Infinity (pydantic turns them
into ``null``), sets (a list in an order that changes between processes, so a retry after a
restart would be a 409 conflict), bytes, datetimes, keys that are not strings (quietly turned into
strings), lone surrogates (no UTF-8 encoding exists), and nesting the service refuses. A result
holding any of these raises ``UnserializableResult`` naming the field, never its value.

Accepted, and sent as they are: ``None``, ``bool``, ``int`` within signed 64 bits, finite
``float``, ``str`` that is valid Unicode, ``list`` and ``tuple`` (a JSON array), ``dict`` with
``str`` keys; at most ``MAX_DEPTH`` containers deep, the checked object itself counting as one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from bot_client._exceptions import UnserializableResult

MAX_DEPTH = 64  # containers, the results object itself included
_INT_LIMIT = 2**63  # ints in [-2**63, 2**63) are what a database integer holds
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_KEY_SHOWN = 40


def _key_path(path: str, key: str) -> str:
    if _NAME.fullmatch(key):
        return f"{path}.{key}" if path else key
    shown = key if len(key) <= _MAX_KEY_SHOWN else key[:_MAX_KEY_SHOWN] + "..."
    return f"{path}[{json.dumps(shown)}]"


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json(value: Any, path: str, *, depth: int = 0) -> None:
    """Raise ``UnserializableResult`` unless ``value`` is JSON that round-trips as it is."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise UnserializableResult(
                path, "invalid_number", "is an integer outside the signed 64-bit range"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnserializableResult(
                path, "invalid_number", "is NaN or Infinity, which JSON cannot carry"
            )
        return
    if isinstance(value, str):
        if not _valid_text(value):
            raise UnserializableResult(
                path, "invalid_text", "holds a lone surrogate, which is not valid Unicode"
            )
        return
    if isinstance(value, list | tuple | dict):
        depth += 1
        if depth > MAX_DEPTH:
            raise UnserializableResult(path, "too_deep", f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise UnserializableResult(
                        path,
                        "invalid_key",
                        f"has a key of type {type(key).__name__}; JSON keys are strings",
                    )
                if not _valid_text(key):
                    raise UnserializableResult(
                        path, "invalid_text", "has a key holding a lone surrogate"
                    )
                check_json(item, _key_path(path, key), depth=depth)
        else:
            for index, item in enumerate(value):
                check_json(item, f"{path}[{index}]", depth=depth)
        return
    raise UnserializableResult(
        path, "invalid_type", f"is a {type(value).__name__}, which JSON cannot carry faithfully"
    )


def check_body(body: Mapping[str, Any]) -> None:
    """Check every field of a request body; each top-level field counts its depth from itself,
    so ``results`` may nest ``MAX_DEPTH`` levels whatever holds it."""
    for key, value in body.items():
        if not isinstance(key, str):
            raise UnserializableResult("", "invalid_key", "the body has a key that is not a string")
        check_json(value, _key_path("", key))
