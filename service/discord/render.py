"""Results to Discord messages: one result becomes one or more ordered parts, each within every
limit in ``limits.py``, so Discord never refuses one for its size or shape.

Rendering rules (the helpers live in ``split.py``, ``embeds.py`` and ``report.py``):

- Every part carries ``allowed_mentions`` with ``parse: []``. The requesting user, when given as
  a snowflake, is the only mention ever allowed: listed by id on the first part, whose content
  starts with ``<@id>``. Text from the results (``@everyone``, role mentions) is left as it is;
  with ``parse`` empty it cannot ping.
- Without a bot message (or with one that has neither content nor a usable embed) the result is
  one summary embed: title, source link, depth, up to 8 short top-level scalars, footer with the
  workflow id.
- A bot message is sent instead of the summary embed: its content split over parts (paragraph,
  line, word, then hard cuts; code fences closed and reopened across parts), then its embeds,
  cleaned to what Discord takes and spread over parts (10 and 6000 characters per part), the
  first group riding on the last content part.
- ``results-<id>.json`` (the full results) is attached whenever the summary embed could not show
  every top-level value whole (nested values, long or cut text, more than 8 values), and also
  whenever anything of the bot's message was cut or dropped. A small flat result is taken to be
  represented by the bot's own message, so it gets no attachment. ``report-<id>.md`` is attached
  whenever some string in the results is longer than 1024 characters.
- Files go on the last message part. A part's files total at most ``file_limit`` bytes (so at
  most one large file per request); the rest go on extra parts whose content names them ("Full
  results, part 2 of 3"). JSON over the limit is cut into ``results-<id>.partKofN.json`` chunks
  that join back byte for byte; a report over the limit is left out, with a note pointing at
  ``/retrieve_results``.
- Payload texts are made UTF-8 encodable (surrogates from UTF-16 input joined or replaced).
- The same inputs always give the same parts, so a worker that re-renders after a crash can skip
  the parts it already delivered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.discord.embeds import Embed, clean_embed, pack, pack_embeds, summary_embed
from service.discord.limits import LIMITS
from service.discord.report import (
    chunk_bytes,
    has_long_text,
    markdown_report,
    results_json,
    safe_stem,
)
from service.discord.snowflake import is_snowflake
from service.discord.split import FENCE, clamp, fence_state, split_content

JSON_TYPE = "application/json"
MARKDOWN_TYPE = "text/markdown; charset=utf-8"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str  # "application/json", "text/markdown", ...


@dataclass(frozen=True, slots=True)
class Part:
    payload: dict[str, Any]  # the JSON body: content?, embeds?, allowed_mentions, attachments?
    files: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class _File:
    attachment: Attachment
    label: str  # what an extra part carrying this file says about it


def render_result(
    *,
    workflow_id: str,
    results: Mapping[str, Any],
    url: str | None,
    depth: str | None,
    message: Mapping[str, Any] | None,
    mention_user_id: str | None = None,
    file_limit: int = LIMITS.file_size,
) -> list[Part]:
    """The ordered messages that deliver one result (see the module docstring for the rules)."""
    if file_limit < 1:
        raise ValueError("file_limit must be at least one byte")
    mention = mention_user_id if mention_user_id and is_snowflake(mention_user_id) else None
    summary, whole = summary_embed(workflow_id=workflow_id, results=results, url=url, depth=depth)
    bodies, cut = _bot_message(message, mention)
    if not bodies:
        bodies = [{"embeds": [summary]}]
        if mention:
            bodies[0] = {"content": f"<@{mention}>", **bodies[0]}
    files, notes = _files(workflow_id, results, url, depth, file_limit, with_json=cut or not whole)
    for note in notes:
        _add_note(bodies, note)
    groups = _group_files(files, file_limit)
    payloads: list[tuple[dict[str, Any], list[_File]]] = [(body, []) for body in bodies]
    if groups:
        payloads[-1] = (bodies[-1], groups[0])
        for group in groups[1:]:
            payloads.append(({"content": "; ".join(f.label for f in group)}, group))
    return [
        _part(body, group, mention if i == 0 else None) for i, (body, group) in enumerate(payloads)
    ]


def _bot_message(
    message: Mapping[str, Any] | None, mention: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """The bot's message as bodies (empty when it has nothing to show), and whether anything of
    it was cut or dropped."""
    if message is None:
        return [], False
    raw_content = message.get("content")
    content = raw_content.strip() if isinstance(raw_content, str) else ""
    cut = raw_content is not None and not isinstance(raw_content, str)
    raw_embeds = message.get("embeds")
    if raw_embeds is not None and not isinstance(raw_embeds, list):
        cut, raw_embeds = True, []
    embeds: list[Embed] = []
    for raw in raw_embeds or []:
        embed, lost = clean_embed(raw)
        cut = cut or lost
        if embed is not None:
            embeds.append(embed)
    if not content and not embeds:
        return [], cut
    if mention:
        tag = f"<@{mention}>"
        if not content.startswith(tag):
            # On a line of its own before a code block, so the fence still opens a line.
            content = tag + ("\n" if content.startswith(FENCE) else " ") + content
    bodies: list[dict[str, Any]] = [{"content": c} for c in split_content(content.strip())]
    groups = pack_embeds(embeds)
    if groups and bodies:
        bodies[-1]["embeds"] = groups.pop(0)
    bodies += [{"embeds": group} for group in groups]
    return bodies, cut


def _files(
    workflow_id: str,
    results: Mapping[str, Any],
    url: str | None,
    depth: str | None,
    file_limit: int,
    *,
    with_json: bool,
) -> tuple[list[_File], list[str]]:
    """The attachments in order (JSON or its chunks, then the report) and notes for content."""
    stem = safe_stem(workflow_id)
    files: list[_File] = []
    notes: list[str] = []
    if with_json:
        data = results_json(results)
        if len(data) <= file_limit:
            files.append(_File(Attachment(f"results-{stem}.json", data, JSON_TYPE), "Full results"))
        else:
            chunks = chunk_bytes(data, file_limit)
            n = len(chunks)
            for k, chunk in enumerate(chunks, 1):
                name = f"results-{stem}.part{k}of{n}.json"
                files.append(
                    _File(Attachment(name, chunk, JSON_TYPE), f"Full results, part {k} of {n}")
                )
    if has_long_text(results):
        report = markdown_report(workflow_id=workflow_id, results=results, url=url, depth=depth)
        if len(report) <= file_limit:
            name = f"report-{stem}.md"
            files.append(_File(Attachment(name, report, MARKDOWN_TYPE), "Readable report"))
        else:
            retrieve = clamp(f"/retrieve_results workflow_id:{workflow_id}", 300)[0]
            notes.append(
                "The readable report is too large to attach. The full result is retrievable "
                f"from the service: `{retrieve}`"
            )
    return files, notes


def _add_note(bodies: list[dict[str, Any]], note: str) -> None:
    """Appends a note to the last part's content when it fits there (and does not land inside
    a code block), else sends it as a part of its own."""
    last = bodies[-1]
    content = last.get("content", "")
    combined = f"{content}\n\n{note}".strip()
    if len(combined) <= LIMITS.content and fence_state(content) is None:
        # Keep the key order of every payload the same: content first.
        bodies[-1] = {"content": combined, **{k: v for k, v in last.items() if k != "content"}}
    else:
        bodies.append({"content": clamp(note, LIMITS.content)[0]})


def _group_files(files: list[_File], file_limit: int) -> list[list[_File]]:
    """Consecutive groups of at most 10 files adding up to at most ``file_limit`` bytes."""
    return pack(
        files,
        lambda f: len(f.attachment.content),
        max_count=LIMITS.attachments,
        max_size=file_limit,
    )


def _encodable(value: Any) -> Any:
    """``value`` with every string UTF-8 encodable: surrogate pairs (as UTF-16 input can leave
    them) joined, lone surrogates replaced by U+FFFD. httpx sends JSON as UTF-8 and would fail
    on them; neither change makes a text longer, so every limit still holds."""
    if isinstance(value, str):
        if not _SURROGATE.search(value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {k: _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


def _part(body: dict[str, Any], group: list[_File], mention: str | None) -> Part:
    payload: dict[str, Any] = _encodable(body)
    payload["allowed_mentions"] = {"parse": [], "users": [mention]} if mention else {"parse": []}
    if group:
        payload["attachments"] = [
            {"id": i, "filename": f.attachment.filename} for i, f in enumerate(group)
        ]
    return Part(payload=payload, files=tuple(f.attachment for f in group))
