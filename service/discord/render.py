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
- A failed run's result (``error``: stage and message) leads with an error rendering of the
  summary embed ("Analysis failed", the message as its description, the stage as its first
  field), which carries the mention; the bot's message, if any, follows it. The results' summary
  and title are then not shown as such, so any results beyond the headlines go in the JSON.
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
- A result becomes at most ``max_parts`` messages (``RELAY_MAX_PARTS``). When the rendering above
  would need more, the bot's message is cut at a part boundary: the parts that fit are sent, the
  whole message (all of its content, then every embed as JSON) is attached as
  ``content-<id>.md``, and the last part says so ("The full text is attached as ..."). Embeds
  that do not fit are therefore not sent as embeds; they are in that file (which is left out,
  with a note pointing at ``/retrieve_results``, when over ``file_limit``; it is not needed when
  the message fits after all). Files are kept in order (results JSON, report, message copy)
  while their parts fit within ``max_parts``; one that does not is left out whole (a chunk of a
  JSON is no use alone), with a note pointing at ``/retrieve_results``. The notes go on the last
  message part, whose content is kept short enough for them.
- For delivery every part ends with its marker line (``marker.py``: the result and the part, in
  small print), so that a part whose send went unanswered can be found in the channel; contents
  are cut short enough for it.
- Payload texts are made UTF-8 encodable (surrogates from UTF-16 input joined or replaced).
- The same inputs always give the same parts, so a worker that re-renders after a crash can skip
  the parts it already delivered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.discord.embeds import Embed, clean_embed, pack, pack_embeds, summary_embed
from service.discord.limits import LIMITS
from service.discord.marker import marker, marker_room, with_marker
from service.discord.report import (
    chunk_bytes,
    has_long_text,
    markdown_report,
    message_markdown,
    results_json,
    safe_stem,
)
from service.discord.snowflake import is_snowflake
from service.discord.split import FENCE, clamp, fence_state, split_content

DEFAULT_MAX_PARTS = 10
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


@dataclass(frozen=True, slots=True)
class _Family:
    """Files that only make sense together (the chunks of one JSON), and what to say instead
    when they have to be left out."""

    files: list[_File]
    left_out: str


@dataclass(frozen=True, slots=True)
class _BotMessage:
    content: str  # trimmed, with the mention in front when there is one
    embeds: list[Embed]  # cleaned to what Discord takes
    raw: Mapping[str, Any]  # as the bot sent it, for the attached copy


def retrieve_command(workflow_id: str) -> str:
    """The slash command that fetches this result from the service, for notes to the reader."""
    return clamp(f"/retrieve_results workflow_id:{workflow_id}", 300)[0]


def render_result(
    *,
    workflow_id: str,
    results: Mapping[str, Any],
    url: str | None,
    depth: str | None,
    message: Mapping[str, Any] | None,
    mention_user_id: str | None = None,
    file_limit: int = LIMITS.file_size,
    max_parts: int = DEFAULT_MAX_PARTS,
    error: tuple[str, str] | None = None,
    marked: bool = False,
) -> list[Part]:
    """The ordered messages that deliver one result (see the module docstring for the rules).
    With ``error`` (stage, message) the result is a failed run's: the summary embed reports the
    failure and always comes first, the bot's message (if any) after it. With ``marked`` each
    part ends with its marker line (``marker.py``), for which every content leaves room."""
    limit = LIMITS.content - (marker_room(workflow_id, max_parts) if marked else 0)
    parts = _render(
        workflow_id, results, url, depth, message, mention_user_id, file_limit, max_parts, error,
        limit,
    )  # fmt: skip
    if not marked:
        return parts
    return [
        Part(with_marker(part.payload, marker(workflow_id, i, len(parts))), part.files)
        for i, part in enumerate(parts)
    ]


def _render(
    workflow_id: str,
    results: Mapping[str, Any],
    url: str | None,
    depth: str | None,
    message: Mapping[str, Any] | None,
    mention_user_id: str | None,
    file_limit: int,
    max_parts: int,
    error: tuple[str, str] | None,
    limit: int,
) -> list[Part]:
    if file_limit < 1:
        raise ValueError("file_limit must be at least one byte")
    if max_parts < 1:
        raise ValueError("max_parts must be at least one")
    mention = mention_user_id if mention_user_id and is_snowflake(mention_user_id) else None
    summary, whole = summary_embed(
        workflow_id=workflow_id, results=results, url=url, depth=depth, error=error
    )
    # A failure is never left unsaid: its embed leads, and carries the mention.
    lead = [_summary_body(summary, mention)] if error is not None else []
    bot, cut = _bot_message(message, None if lead else mention)
    families, notes = _files(
        workflow_id, results, url, depth, file_limit, with_json=cut or not whole
    )
    bodies = [*lead, *_bodies(bot, limit)] if bot else [_summary_body(summary, mention)]
    for note in notes:
        _add_note(bodies, note, limit)
    parts = _parts(bodies, _group_files(_flat(families), file_limit), mention)
    if len(parts) <= max_parts:
        return parts
    return _bounded(
        workflow_id, bot, summary, lead, families, notes, mention, file_limit, max_parts, limit
    )


def _flat(families: Iterable[_Family]) -> list[_File]:
    return [f for family in families for f in family.files]


def _summary_body(summary: Embed, mention: str | None) -> dict[str, Any]:
    return {"content": f"<@{mention}>", "embeds": [summary]} if mention else {"embeds": [summary]}


def _parts(
    bodies: list[dict[str, Any]], groups: list[list[_File]], mention: str | None
) -> list[Part]:
    """Bodies in order, the first file group on the last one, each further group a part."""
    payloads: list[tuple[dict[str, Any], list[_File]]] = [(body, []) for body in bodies]
    if groups:
        payloads[-1] = (bodies[-1], groups[0])
        for group in groups[1:]:
            payloads.append(({"content": "; ".join(f.label for f in group)}, group))
    return [
        _part(body, group, mention if i == 0 else None) for i, (body, group) in enumerate(payloads)
    ]


def _bounded(
    workflow_id: str,
    bot: _BotMessage | None,
    summary: Embed,
    lead: list[dict[str, Any]],
    families: list[_Family],
    notes: list[str],
    mention: str | None,
    file_limit: int,
    max_parts: int,
    limit: int,
) -> list[Part]:
    """The rendering in at most ``max_parts`` parts (see the module docstring); contents stay
    within ``limit`` characters."""
    notes = list(notes)
    message_file = _message_family(workflow_id, bot, file_limit) if bot else None
    if message_file is not None:
        families = [*families, message_file]
    # Whole files, in order, while they fit: a part of a JSON is no use without the rest.
    kept: list[_Family] = []
    for family in families:
        if len(_group_files(_flat([*kept, family]), file_limit)) <= max_parts:
            kept.append(family)
        elif family is message_file:
            message_file = None  # the note below says where the text is instead
        else:
            notes.append(family.left_out)
    families = kept
    groups = _group_files(_flat(families), file_limit)
    room = max_parts - max(len(groups) - 1, 0)
    if bot is None:
        bodies = [_summary_body(summary, mention)]
    else:
        told = (
            message_file.files[0].label
            if message_file is not None
            else "The full text did not fit; it is retrievable from the service: "
            f"`{retrieve_command(workflow_id)}`"
        )
        # Parts are cut short enough that the note always fits on whichever is last.
        note = _joined([*notes, told])
        bodies = _bodies(bot, limit - len(note) - len(_NOTE_GAP) - len(FENCE) - 1)
        if len(lead) + len(bodies) > room:
            bodies = bodies[: max(room - len(lead), 0)]
            notes.append(told)
        elif message_file is not None:
            # Everything fits after all: the copy is not needed, and its room goes to the rest.
            groups = _group_files(_flat(f for f in families if f is not message_file), file_limit)
        bodies = [*lead, *bodies]
    if notes:
        _close_with_note(bodies, _joined(notes))
    return _parts(bodies, groups, mention)


_NOTE_GAP = "\n\n"
_NOTE_LIMIT = 1500  # leaves room for at least some of the message on the part that carries it


def _joined(notes: list[str]) -> str:
    return clamp(" ".join(notes), _NOTE_LIMIT)[0]


def _close_with_note(bodies: list[dict[str, Any]], note: str) -> None:
    """Ends the last body's content with ``note``, closing a code block left open first."""
    last = bodies[-1]
    content = last.get("content", "")
    if content and fence_state(content) is not None:
        content += "\n" + FENCE
    combined = f"{content}{_NOTE_GAP}{note}".strip() if content else note
    bodies[-1] = {"content": combined, **{k: v for k, v in last.items() if k != "content"}}


def _message_family(workflow_id: str, bot: _BotMessage, file_limit: int) -> _Family | None:
    """The bot's whole message as a Markdown file, for when not all of it fits in the parts."""
    name = f"content-{safe_stem(workflow_id)}.md"
    data = message_markdown(bot.raw)
    if len(data) > file_limit:
        return None
    content = bot.raw.get("content")
    has_text = isinstance(content, str) and content.strip()
    label = f"The full text is attached as {name}."
    if bot.embeds:
        what = "The full text and every embed are" if has_text else "Every embed is"
        label = f"{what} attached as {name}."
    return _Family([_File(Attachment(name, data, MARKDOWN_TYPE), label)], left_out=label)


def _bot_message(
    message: Mapping[str, Any] | None, mention: str | None
) -> tuple[_BotMessage | None, bool]:
    """The bot's message cleaned for Discord (``None`` when it has nothing to show), and whether
    anything of it was cut or dropped."""
    if message is None:
        return None, False
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
        return None, cut
    if mention:
        tag = f"<@{mention}>"
        if not content.startswith(tag):
            # On a line of its own before a code block, so the fence still opens a line.
            content = tag + ("\n" if content.startswith(FENCE) else " ") + content
    return _BotMessage(content=content.strip(), embeds=embeds, raw=message), cut


def _bodies(bot: _BotMessage, limit: int) -> list[dict[str, Any]]:
    """The bot's message as bodies: content split at ``limit``, then the embeds, the first
    group riding on the last content part."""
    bodies: list[dict[str, Any]] = [{"content": c} for c in split_content(bot.content, limit)]
    groups = pack_embeds([dict(e) for e in bot.embeds])
    if groups and bodies:
        bodies[-1]["embeds"] = groups.pop(0)
    bodies += [{"embeds": group} for group in groups]
    return bodies


def _files(
    workflow_id: str,
    results: Mapping[str, Any],
    url: str | None,
    depth: str | None,
    file_limit: int,
    *,
    with_json: bool,
) -> tuple[list[_Family], list[str]]:
    """The attachments in order (JSON or its chunks, then the report) and notes for content."""
    stem = safe_stem(workflow_id)
    retrieve = retrieve_command(workflow_id)
    families: list[_Family] = []
    notes: list[str] = []
    if with_json:
        data = results_json(results)
        files: list[_File] = []
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
        left_out = f"The full results do not fit here; they are retrievable: `{retrieve}`"
        families.append(_Family(files, left_out))
    if has_long_text(results):
        report = markdown_report(workflow_id=workflow_id, results=results, url=url, depth=depth)
        too_large = (
            "The readable report is too large to attach. The full result is retrievable "
            f"from the service: `{retrieve}`"
        )
        if len(report) <= file_limit:
            name = f"report-{stem}.md"
            file = _File(Attachment(name, report, MARKDOWN_TYPE), "Readable report")
            families.append(_Family([file], too_large))
        else:
            notes.append(too_large)
    return families, notes


def _add_note(bodies: list[dict[str, Any]], note: str, limit: int) -> None:
    """Appends a note to the last part's content when it fits there (and does not land inside
    a code block), else sends it as a part of its own."""
    last = bodies[-1]
    content = last.get("content", "")
    combined = f"{content}\n\n{note}".strip()
    if len(combined) <= limit and fence_state(content) is None:
        # Keep the key order of every payload the same: content first.
        bodies[-1] = {"content": combined, **{k: v for k, v in last.items() if k != "content"}}
    else:
        bodies.append({"content": clamp(note, limit)[0]})


def _group_files(files: list[_File], file_limit: int) -> list[list[_File]]:
    """Consecutive groups of at most 10 files adding up to at most ``file_limit`` bytes."""
    return pack(
        files,
        lambda f: len(f.attachment.content),
        max_count=LIMITS.attachments,
        max_size=file_limit,
    )


def encodable(value: Any) -> Any:
    """``value`` with every string UTF-8 encodable: surrogate pairs (as UTF-16 input can leave
    them) joined, lone surrogates replaced by U+FFFD. httpx sends JSON as UTF-8 and would fail
    on them; neither change makes a text longer, so every limit still holds."""
    if isinstance(value, str):
        if not _SURROGATE.search(value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {k: encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable(v) for v in value]
    return value


def _part(body: dict[str, Any], group: list[_File], mention: str | None) -> Part:
    payload: dict[str, Any] = encodable(body)
    payload["allowed_mentions"] = {"parse": [], "users": [mention]} if mention else {"parse": []}
    if group:
        payload["attachments"] = [
            {"id": i, "filename": f.attachment.filename} for i, f in enumerate(group)
        ]
    return Part(payload=payload, files=tuple(f.attachment for f in group))
