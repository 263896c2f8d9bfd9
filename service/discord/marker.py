"""The marker every delivered part carries, and the nonce of a bot message: a message can be
recognised as one of ours after an answer was lost.

The marker is the last line of a part's content, in Discord's small print (``-#``), naming the
result and the part: a reader sees where the message comes from, and the service finds the part
again in a channel's history (``GET /channels/{id}/messages``) when it does not know whether a
send arrived. The same result rendered twice gives the same markers.

The nonce (Create Message's ``nonce`` with ``enforce_nonce``) makes Discord return the message
it already has instead of posting a second one. It is derived from the tenant, the result (its
creation time tells a result from an earlier one with the same workflow id that was deleted), its
delivery round (a redeliver posts again on purpose) and the part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from service.discord.split import FENCE, fence_state

NONCE_LENGTH = 25  # Discord takes at most 25 characters
_PREFIX = "-# "


def marker(workflow_id: str, part: int, parts: int) -> str:
    """The marker line of part ``part`` (from 0) of ``parts``."""
    where = f" · part {part + 1} of {parts}" if parts > 1 else ""
    return f"{_PREFIX}result `{workflow_id}`{where}"


def marker_room(workflow_id: str, max_parts: int) -> int:
    """Characters a marker line may take, with the line break before it."""
    return len(marker(workflow_id, max_parts - 1, max_parts)) + len("\n") + len(FENCE) + 1


def with_marker(payload: Mapping[str, Any], line: str) -> dict[str, Any]:
    """``payload`` with ``line`` as the last line of its content (a code block left open is
    closed first, so that the marker is not shown as code). Content stays first."""
    content = payload.get("content") or ""
    if content and fence_state(content) is not None:
        content += "\n" + FENCE
    marked = f"{content}\n{line}" if content else line
    return {"content": marked, **{k: v for k, v in payload.items() if k != "content"}}


def carries_marker(content: object, line: str) -> bool:
    """True when a message's content ends with the marker line."""
    if not isinstance(content, str):
        return False
    content = content.rstrip()
    return content == line or content.endswith("\n" + line)


def message_nonce(
    *, tenant: str, workflow_id: str, created_at: float, delivery_round: int, part: int
) -> str:
    """The nonce of one part of one delivery of one result: stable across resends and
    takeovers, different for another result or another delivery."""
    key = f"{tenant}\x00{workflow_id}\x00{created_at!r}\x00{delivery_round}\x00{part}"
    return hashlib.sha256(key.encode()).hexdigest()[:NONCE_LENGTH]
