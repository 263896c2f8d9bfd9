"""Cutting text to Discord's limits: shortening with an ellipsis, and splitting long content into
messages without losing anything but the whitespace at the cut points.

Part of the renderer (see ``render.py``); pure functions over strings.
"""

from __future__ import annotations

import re
import unicodedata

from service.discord.limits import LIMITS

ELLIPSIS = "…"
FENCE = "```"
_CLOSE = "\n" + FENCE
# An info string is reopened only when it looks like one (a language name, perhaps with options);
# anything longer is more likely prose after a stray fence, and would eat into the next part.
_INFO = re.compile(r"[^`\n]{0,64}")
_PARAGRAPH = re.compile(r"\n[ \t\r]*\n")
_LINE = re.compile(r"\n")
_SPACE = re.compile(r"\s")
# Code points that belong to the character before them: a cut just before one would split what
# the reader sees as one character (an accent, an emoji skin tone, a ZWJ sequence, a keycap).
_ZWJ = "\u200d"
_ATTACHING = frozenset({_ZWJ, "\ufe0e", "\ufe0f", "\u20e3"})
_JOIN_BACKOFF = 16


def _is_high(ch: str) -> bool:
    return "\ud800" <= ch <= "\udbff"


def _is_low(ch: str) -> bool:
    return "\udc00" <= ch <= "\udfff"


def _splits_pair(text: str, i: int) -> bool:
    return 0 < i < len(text) and _is_high(text[i - 1]) and _is_low(text[i])


def _splits_cluster(text: str, i: int) -> bool:
    if not 0 < i < len(text):
        return False
    after, before = text[i], text[i - 1]
    return (
        _splits_pair(text, i)
        or after in _ATTACHING
        or before == _ZWJ
        or unicodedata.combining(after) != 0
        or "\U0001f3fb" <= after <= "\U0001f3ff"  # skin tone modifiers
        or (before == "`" and after == "`")  # keep a fence marker whole
    )


def safe_cut(text: str, index: int) -> int:
    """The cut at or just before ``index`` that keeps surrogate pairs, combining marks and emoji
    sequences whole. Falls back to ``index`` itself (moved off a surrogate pair if it can be) when
    no such cut is near, so callers always make progress."""
    index = max(0, min(index, len(text)))
    floor = max(1, index - _JOIN_BACKOFF)
    i = index
    while i > floor and _splits_cluster(text, i):
        i -= 1
    if not _splits_cluster(text, i):
        return i
    return index - 1 if _splits_pair(text, index) and index > 1 else index


def clamp(text: str, limit: int) -> tuple[str, bool]:
    """``text`` trimmed, and cut to ``limit`` code points with an ellipsis if longer.
    Returns the text and whether anything was cut."""
    text = text.strip()
    if len(text) <= limit:
        return text, False
    cut = safe_cut(text, max(0, limit - 1))
    return text[:cut].rstrip() + ELLIPSIS, True


def fence_state(text: str, info: str | None = None) -> str | None:
    """Whether ``text`` ends inside a code block, given the state it starts in: ``None`` when
    outside, else the open block's info string (``""`` for a bare fence).

    Discord pairs ``` markers in order wherever they stand (a block may open and close on one
    line), so this toggles at every marker, not only at the start of lines."""
    pos = 0
    while (found := text.find(FENCE, pos)) != -1:
        pos = found + len(FENCE)
        if info is not None:
            info = None
            continue
        end = text.find("\n", pos)
        rest = text[pos:] if end == -1 else text[pos:end]
        match = _INFO.fullmatch(rest.strip())
        info = match.group(0) if match else ""
    return info


def _choose_cut(text: str, budget: int) -> int:
    """Where to end the next part: the last paragraph break, else line break, else space, that
    keeps the part at least half full; else a hard cut at the budget."""
    window = text[: budget + 1]  # a separator right after the budget still ends the part in time
    least = max(1, budget // 2)
    for pattern in (_PARAGRAPH, _LINE, _SPACE):
        last = None
        for match in pattern.finditer(window, least):
            last = match.start()
        if last is not None and last <= budget:
            return last
    return max(1, safe_cut(text, budget))


def split_content(text: str, limit: int = LIMITS.content) -> list[str]:
    """``text`` as consecutive message contents of at most ``limit`` code points each.

    Cuts prefer paragraph, then line, then word boundaries; the whitespace at a cut is dropped
    (Discord would trim it anyway), nothing else is. A part that ends inside a code block closes
    it, and the next part reopens it with the same info string, so every part renders as code
    where the original did.
    """
    rest = text.strip()
    parts: list[str] = []
    info: str | None = None  # the code block open where ``rest`` starts, if any
    while rest:
        head = "" if info is None else f"{FENCE}{info}\n"
        if len(head) + len(rest) <= limit:
            parts.append(head + rest)
            break
        room = limit - len(head)
        fences = room - len(_CLOSE) >= 1
        if not fences:  # an absurdly small limit: give up on fences rather than loop forever
            head, info, room = "", None, limit
        piece, cut, after = _next_piece(rest, room, info)
        if after is not None and fences:
            # This part ends inside a code block: make room for the closing fence.
            piece, cut, after = _next_piece(rest, room - len(_CLOSE), info)
        parts.append(head + piece + (_CLOSE if after is not None and fences else ""))
        # Inside a code block leading spaces are indentation, so keep them; outside, trim.
        rest = rest[cut:].lstrip("\r\n") if after is not None else rest[cut:].lstrip()
        info = after if fences else None
    return parts


def _next_piece(rest: str, budget: int, info: str | None) -> tuple[str, int, str | None]:
    """The next part's text (at most ``budget``), where ``rest`` continues after it, and the
    code block open at its end."""
    cut = _choose_cut(rest, budget)
    piece = rest[:cut].rstrip()
    after = fence_state(piece, info)
    if after is not None and piece.endswith(FENCE + after):
        cut = _before_opening_line(piece, cut)
        piece = rest[:cut].rstrip()
        after = fence_state(piece, info)
    return piece, cut, after


def _before_opening_line(piece: str, cut: int) -> int:
    """A part that would end with a fence's opening line ends before that line instead, so no
    part carries an empty code block."""
    marker = piece.rfind(FENCE)
    line_start = piece.rfind("\n", 0, marker) + 1
    if line_start > 0 and not piece[line_start:marker].strip():
        return line_start
    return cut
