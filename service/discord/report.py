"""The files the renderer attaches: the full results as JSON (split into chunks when too big for
one file) and a readable Markdown report of results that carry long text.

Part of the renderer (see ``render.py``); pure functions over values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from service.discord.embeds import prettify_key
from service.discord.limits import LIMITS

LONG_TEXT = LIMITS.field_value  # a string longer than any field value reads better as a paragraph
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_STEM_LIMIT = 128
_HEADING_LIMIT = 200
_MAX_HEADING_LEVEL = 4


def safe_stem(workflow_id: str) -> str:
    """The workflow id as a file-name part: only ``A-Za-z0-9_.-`` (``:`` and the rest become
    ``_``), never empty."""
    return _UNSAFE.sub("_", workflow_id)[:_STEM_LIMIT] or "result"


def results_json(results: Mapping[str, Any]) -> bytes:
    """The results pretty-printed as UTF-8 JSON that loads back equal to them."""
    text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; escaped JSON still loads back to the same string.
        return json.dumps(results, indent=2, ensure_ascii=True, default=str).encode("ascii")


def chunk_bytes(data: bytes, limit: int) -> list[bytes]:
    """``data`` as consecutive chunks of at most ``limit`` bytes that join back byte for byte.

    Chunks end after a newline when one is in the second half of the window, else on a UTF-8
    character boundary, so each chunk is readable text on its own."""
    chunks: list[bytes] = []
    start = 0
    while len(data) - start > limit:
        end = start + limit
        newline = data.rfind(b"\n", start + limit // 2, end)
        if newline != -1:
            end = newline + 1
        else:
            boundary = end
            while boundary > start and data[boundary] & 0xC0 == 0x80:  # continuation byte
                boundary -= 1
            end = boundary if boundary > start else end
        chunks.append(data[start:end])
        start = end
    chunks.append(data[start:])
    return chunks


def has_long_text(value: Any, limit: int = LONG_TEXT) -> bool:
    """Whether any string anywhere in ``value`` is longer than ``limit`` code points."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) > limit:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_HEADING_LIMIT]


def _fenced(text: str, info: str = "") -> list[str]:
    # A fence longer than any backtick run inside keeps the block closed where it should be.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text, fence, ""]


def _section(out: list[str], key: Any, value: Any, level: int) -> None:
    heading = _one_line(prettify_key(str(key))) or _one_line(str(key)) or "(unnamed)"
    out += ["#" * level + " " + heading, ""]
    if isinstance(value, str):
        out += [value.strip() or "_(empty)_", ""]
    elif isinstance(value, Mapping) and value and level < _MAX_HEADING_LEVEL:
        for sub_key, sub_value in value.items():
            _section(out, sub_key, sub_value, level + 1)
    elif isinstance(value, Mapping | list | tuple):
        out += _fenced(json.dumps(value, indent=2, ensure_ascii=False, default=str), "json")
    else:
        out += [json.dumps(value, default=str), ""]


def markdown_report(
    *, workflow_id: str, results: Mapping[str, Any], url: str | None, depth: str | None
) -> bytes:
    """A readable Markdown report: a heading per key, text as paragraphs, nested values as
    fenced JSON. Lone surrogates (which UTF-8 cannot carry) are written as escapes."""
    title = results.get("title")
    heading = _one_line(title) if isinstance(title, str) and title.strip() else "Analysis results"
    out = [f"# {heading}", "", f"- Workflow: `{_one_line(workflow_id)}`"]
    if url:
        out.append(f"- Source: <{_one_line(url)}>")
    if depth:
        out.append(f"- Depth: {_one_line(depth)}")
    out.append("")
    for key, value in results.items():
        if key == "title" and isinstance(value, str) and _one_line(value) == heading:
            continue  # already the report's heading
        _section(out, key, value, 2)
    return ("\n".join(out).rstrip() + "\n").encode("utf-8", "backslashreplace")


def message_markdown(message: Mapping[str, Any]) -> bytes:
    """A bot's whole message as Markdown, for when it does not fit in the parts: the content as
    sent, then every embed as fenced JSON (nothing cleaned or cut)."""
    content = message.get("content")
    out = [content if isinstance(content, str) else "", ""]
    if content is not None and not isinstance(content, str):
        out = _fenced(json.dumps(content, indent=2, ensure_ascii=False, default=str), "json")
    embeds = message.get("embeds")
    items = embeds if isinstance(embeds, list) else [] if embeds is None else [embeds]
    for k, embed in enumerate(items, 1):
        out += ["", f"## Embed {k} of {len(items)}", ""]
        out += _fenced(json.dumps(embed, indent=2, ensure_ascii=False, default=str), "json")
    return ("\n".join(out).rstrip() + "\n").encode("utf-8", "backslashreplace")
