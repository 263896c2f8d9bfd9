"""Discord's message limits as data, and a validator that names every limit a message breaks.

Lengths are Unicode code points (Python's ``len``) after trimming surrounding whitespace, which is
how Discord measures them. The renderer keeps every part it produces within these limits; the
validator is the independent check the tests (and the sender, before it spends a request) run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from service.discord.snowflake import is_snowflake


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """One message's limits (Execute Webhook and interaction follow-ups share them)."""

    content: int = 2000
    embeds: int = 10
    embed_total: int = 6000
    title: int = 256
    description: int = 4096
    fields: int = 25
    field_name: int = 256
    field_value: int = 1024
    footer_text: int = 2048
    author_name: int = 256
    attachments: int = 10
    file_size: int = 10 * 1024 * 1024
    username: int = 80
    mention_ids: int = 100
    url: int = 2048


LIMITS = MessageLimits()

# The texts of one embed that count toward the 6000 total: (key, sub-key or None, limit).
EMBED_TEXTS: tuple[tuple[str, str | None, int], ...] = (
    ("title", None, LIMITS.title),
    ("description", None, LIMITS.description),
    ("footer", "text", LIMITS.footer_text),
    ("author", "name", LIMITS.author_name),
)
# Where an embed may carry a URL: (key, sub-key or None).
EMBED_URLS: tuple[tuple[str, str | None], ...] = (
    ("url", None),
    ("footer", "icon_url"),
    ("author", "url"),
    ("author", "icon_url"),
    ("image", "url"),
    ("thumbnail", "url"),
    ("video", "url"),
    ("provider", "url"),
)


class FileLike(Protocol):
    """What the validator needs of an uploaded file (``render.Attachment`` is one)."""

    @property
    def filename(self) -> str: ...

    @property
    def content(self) -> bytes: ...


def text_length(text: str) -> int:
    """Code points Discord counts: surrounding whitespace is trimmed first."""
    return len(text.strip())


def _sub_text(embed: Mapping[str, Any], key: str, sub: str | None) -> Any:
    node = embed.get(key)
    if sub is None:
        return node
    return node.get(sub) if isinstance(node, Mapping) else None


def embed_size(embed: Mapping[str, Any]) -> int:
    """This embed's share of the 6000-character total (title, description, field names and
    values, footer text, author name)."""
    total = 0
    for key, sub, _ in EMBED_TEXTS:
        value = _sub_text(embed, key, sub)
        if isinstance(value, str):
            total += text_length(value)
    fields = embed.get("fields")
    for fld in fields if isinstance(fields, list) else []:
        if isinstance(fld, Mapping):
            for part in ("name", "value"):
                if isinstance(fld.get(part), str):
                    total += text_length(fld[part])
    return total


def is_embed_url(value: object) -> bool:
    """An http(s) URL with a host (or ``attachment://``) of at most 2048 characters, without
    whitespace: what Discord takes in an embed's URL slots."""
    if not isinstance(value, str) or not value or len(value) > LIMITS.url:
        return False
    if any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if parts.scheme == "attachment":
        return bool(parts.netloc or parts.path)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_timestamp(value: object) -> bool:
    """An ISO 8601 date-time string, as an embed's ``timestamp`` must be."""
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _too_long(where: str, value: str, limit: int) -> str | None:
    length = text_length(value)
    if length > limit:
        return f"{where} is {length} characters (limit {limit})"
    return None


def _check_text(where: str, value: Any, limit: int, *, required: bool, out: list[str]) -> None:
    if value is None:
        if required:
            out.append(f"{where} is required")
        return
    if not isinstance(value, str):
        out.append(f"{where} must be a string, not {type(value).__name__}")
        return
    if required and not value.strip():
        out.append(f"{where} must not be empty")
    problem = _too_long(where, value, limit)
    if problem:
        out.append(problem)


def _check_shape(where: str, embed: Mapping[str, Any], out: list[str]) -> None:
    """The non-text parts Discord validates: URLs, colour, timestamp, nested objects."""
    for key in ("footer", "author", "image", "thumbnail", "video", "provider"):
        if key in embed and embed[key] is not None and not isinstance(embed[key], Mapping):
            out.append(f"{where}.{key} must be an object")
    for key, sub in EMBED_URLS:
        value = _sub_text(embed, key, sub)
        if value is not None and not is_embed_url(value):
            out.append(f"{where}.{key}{'.' + sub if sub else ''} is not an http(s) URL")
    color = embed.get("color")
    if color is not None and (
        not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFF
    ):
        out.append(f"{where}.color must be an integer from 0 to 16777215")
    stamp = embed.get("timestamp")
    if stamp is not None and not is_timestamp(stamp):
        out.append(f"{where}.timestamp is not an ISO 8601 date-time")


def _check_embed(where: str, embed: Mapping[str, Any], out: list[str]) -> None:
    for key, sub, limit in EMBED_TEXTS:
        path = f"{where}.{key}" + (f".{sub}" if sub else "")
        _check_text(path, _sub_text(embed, key, sub), limit, required=False, out=out)
    _check_shape(where, embed, out)
    fields = embed.get("fields")
    if fields is None:
        return
    if not isinstance(fields, list):
        out.append(f"{where}.fields must be a list")
        return
    if len(fields) > LIMITS.fields:
        out.append(f"{where} has {len(fields)} fields (limit {LIMITS.fields})")
    for i, fld in enumerate(fields):
        path = f"{where}.fields[{i}]"
        if not isinstance(fld, Mapping):
            out.append(f"{path} must be an object")
            continue
        _check_text(f"{path}.name", fld.get("name"), LIMITS.field_name, required=True, out=out)
        _check_text(f"{path}.value", fld.get("value"), LIMITS.field_value, required=True, out=out)
        if fld.get("inline") is not None and not isinstance(fld.get("inline"), bool):
            out.append(f"{path}.inline must be a boolean")


def _check_embeds(embeds: Any, out: list[str]) -> None:
    if embeds is None:
        return
    if not isinstance(embeds, list):
        out.append("embeds must be a list")
        return
    if len(embeds) > LIMITS.embeds:
        out.append(f"{len(embeds)} embeds (limit {LIMITS.embeds})")
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, Mapping):
            out.append(f"embeds[{i}] must be an object")
            continue
        _check_embed(f"embeds[{i}]", embed, out)
        total += embed_size(embed)
    if total > LIMITS.embed_total:
        out.append(f"embeds total {total} characters (limit {LIMITS.embed_total})")


def _check_mentions(mentions: Any, out: list[str]) -> None:
    if mentions is None:
        out.append("allowed_mentions is missing: every message must carry parse []")
        return
    if not isinstance(mentions, Mapping):
        out.append("allowed_mentions must be an object")
        return
    if mentions.get("parse") != []:
        out.append("allowed_mentions.parse must be an empty list, so nothing pings by accident")
    for kind in ("users", "roles"):
        ids = mentions.get(kind)
        if ids is None:
            continue
        if not isinstance(ids, list) or not all(
            isinstance(i, str) and is_snowflake(i) for i in ids
        ):
            out.append(f"allowed_mentions.{kind} must be a list of snowflakes")
        elif len(ids) > LIMITS.mention_ids:
            out.append(f"allowed_mentions.{kind} has {len(ids)} ids (limit {LIMITS.mention_ids})")
        elif len(set(ids)) != len(ids):
            out.append(f"allowed_mentions.{kind} repeats an id")


def _check_files(listed: Any, files: Sequence[FileLike], file_limit: int, out: list[str]) -> None:
    if len(files) > LIMITS.attachments:
        out.append(f"{len(files)} files (limit {LIMITS.attachments})")
    for f in files:
        if len(f.content) > file_limit:
            out.append(f"file {f.filename!r} is {len(f.content)} bytes (limit {file_limit})")
        if not f.filename or len(f.filename) > 1024:
            out.append(f"file name {f.filename[:40]!r} must be 1 to 1024 characters")
    if listed is None:
        return  # Discord then attaches every uploaded file as is
    if not isinstance(listed, list) or len(listed) > LIMITS.attachments:
        out.append(f"attachments must be a list of at most {LIMITS.attachments} entries")
        return
    ids = [a.get("id") if isinstance(a, Mapping) else None for a in listed]
    # Each upload must be listed once by its index, or Discord drops or refuses it.
    if ids != list(range(len(files))):
        out.append("attachments must list each file once by its index (0 .. n-1)")


def violations(
    payload: Mapping[str, Any],
    files: Sequence[FileLike] = (),
    *,
    file_limit: int = LIMITS.file_size,
) -> list[str]:
    """Every limit or shape rule this message breaks, in words; empty when Discord will take it."""
    out: list[str] = []
    content = payload.get("content")
    _check_text("content", content, LIMITS.content, required=False, out=out)
    _check_embeds(payload.get("embeds"), out)
    _check_mentions(payload.get("allowed_mentions"), out)
    _check_files(payload.get("attachments"), files, file_limit, out)
    username = payload.get("username")
    if username is not None and (
        not isinstance(username, str) or not 1 <= text_length(username) <= LIMITS.username
    ):
        out.append(f"username must be 1 to {LIMITS.username} characters")
    has_content = isinstance(content, str) and bool(content.strip())
    has_embeds = isinstance(payload.get("embeds"), list) and bool(payload["embeds"])
    others = payload.get("components") or payload.get("poll")
    if not (has_content or has_embeds or files or others):
        out.append("nothing to send: no content, embeds or files")
    return out
