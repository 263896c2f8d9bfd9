"""Discord's message rules: the JSON Schema check plus the cross-field rules it cannot express.

Lengths are counted in code points after trimming surrounding whitespace, as Discord does, so
the schema runs on a trimmed copy of the body. Everything wrong with the body is collected into
one 50035 `errors` tree; emptiness (50006) and the attachment count (30015) come after.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from service.testing.errors import (
    EMPTY_MESSAGE,
    INVALID_FORM_BODY,
    MAX_ATTACHMENTS,
    DiscordError,
    ErrorPath,
    FormErrors,
    body_error,
    max_length,
    type_error,
)
from service.testing.models import (
    FLAG_EPHEMERAL,
    FLAG_IS_COMPONENTS_V2,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
)
from service.testing.schema import MessageSchemas, SchemaKind

# "create" and "bot_edit" are the bot-token routes: Create Message and Edit Message.
MessageKind = Literal["execute", "followup", "edit", "create", "bot_edit"]
EDITS: frozenset[MessageKind] = frozenset({"edit", "bot_edit"})
# Execute Webhook fields a bot's Create Message does not take.
WEBHOOK_ONLY_FIELDS = ("username", "avatar_url", "thread_name")

CONTENT_LIMIT = 2000
EMBEDS_LIMIT = 10
EMBED_TOTAL_LIMIT = 6000
FIELDS_LIMIT = 25
ATTACHMENTS_LIMIT = 10
MENTION_IDS_LIMIT = 100
USERNAME_FORBIDDEN = ("clyde", "discord")

_WEBHOOK_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2
ALLOWED_FLAGS: dict[MessageKind, int] = {
    "execute": _WEBHOOK_FLAGS,
    "followup": _WEBHOOK_FLAGS | FLAG_EPHEMERAL,
    "edit": _WEBHOOK_FLAGS,
    "create": _WEBHOOK_FLAGS,
    "bot_edit": _WEBHOOK_FLAGS,
}

# (key path inside one embed, limit, required) for the texts that count toward the 6000 total.
_EMBED_TEXTS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("title",), 256),
    (("description",), 4096),
    (("footer", "text"), 2048),
    (("author", "name"), 256),
)
_FIELD_TEXTS = (("name", 256), ("value", 1024))


SCHEMA_FOR: dict[MessageKind, SchemaKind] = {
    "execute": "execute",
    "followup": "execute",
    "edit": "edit",
    "create": "create",
    "bot_edit": "bot_edit",
}


@dataclass(frozen=True)
class UploadedFile:
    """One `files[n]` part of a multipart body."""

    index: int
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class AttachmentPlan:
    """What the stored message's attachment list becomes: a new upload or a kept attachment."""

    filename: str
    file: UploadedFile | None = None
    keep_id: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ValidatedBody:
    payload: dict[str, Any]
    attachments: list[AttachmentPlan] | None  # None: an edit that leaves attachments alone


def _strip(obj: dict[str, Any], key: str) -> None:
    if isinstance(obj.get(key), str):
        obj[key] = obj[key].strip()


def normalize(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy with the length-limited texts trimmed, which is what Discord measures and keeps."""
    out = copy.deepcopy(payload)
    for key in ("content", "username", "thread_name"):
        _strip(out, key)
    embeds = out.get("embeds")
    for embed in embeds if isinstance(embeds, list) else []:
        if not isinstance(embed, dict):
            continue
        _strip(embed, "title")
        _strip(embed, "description")
        for sub in ("footer", "author"):
            if isinstance(embed.get(sub), dict):
                _strip(embed[sub], "text" if sub == "footer" else "name")
        fields = embed.get("fields")
        for fld in fields if isinstance(fields, list) else []:
            if isinstance(fld, dict):
                _strip(fld, "name")
                _strip(fld, "value")
    return out


def _text(value: Any, path: ErrorPath, limit: int, errors: FormErrors, *, required: bool) -> int:
    """Checks one text; returns the code points it adds to the embed total."""
    if value is None:
        if required:
            errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        return 0
    if not isinstance(value, str):
        errors.add(path, *type_error("string", value))
        return 0
    if required and not value:
        errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    if len(value) > limit:
        errors.add(path, *max_length(limit))
    return len(value)


def _check_embed(embed: dict[str, Any], path: ErrorPath, errors: FormErrors) -> int:
    total = 0
    for keys, limit in _EMBED_TEXTS:
        node: Any = embed
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            total += _text(node.get(keys[-1]), (*path, *keys), limit, errors, required=False)
    fields = embed.get("fields")
    if fields is None:
        return total
    if not isinstance(fields, list):
        errors.add((*path, "fields"), *type_error("array", fields))
        return total
    if len(fields) > FIELDS_LIMIT:
        errors.add((*path, "fields"), *max_length(FIELDS_LIMIT))
    for i, fld in enumerate(fields):
        if not isinstance(fld, dict):
            errors.add((*path, "fields", i), *type_error("object", fld))
            continue
        for key, limit in _FIELD_TEXTS:
            total += _text(fld.get(key), (*path, "fields", i, key), limit, errors, required=True)
    return total


def _check_texts(p: dict[str, Any], errors: FormErrors) -> None:
    _text(p.get("content"), ("content",), CONTENT_LIMIT, errors, required=False)
    embeds = p.get("embeds")
    if embeds is None:
        return
    if not isinstance(embeds, list):
        errors.add(("embeds",), *type_error("array", embeds))
        return
    if len(embeds) > EMBEDS_LIMIT:
        errors.add(("embeds",), *max_length(EMBEDS_LIMIT))
    total = 0
    for i, embed in enumerate(embeds):
        if isinstance(embed, dict):
            total += _check_embed(embed, ("embeds", i), errors)
        else:
            errors.add(("embeds", i), *type_error("object", embed))
    if total > EMBED_TOTAL_LIMIT:
        errors.add(
            ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )


def _check_identity(p: dict[str, Any], kind: MessageKind, errors: FormErrors) -> None:
    if kind in ("create", "bot_edit"):
        # A bot posts as itself; Discord ignores these, the emulator exposes the mix-up.
        for key in WEBHOOK_ONLY_FIELDS:
            if p.get(key) is not None:
                errors.add((key,), "FIELD_NOT_ALLOWED", "Only webhooks can set this.")
        return
    if kind == "followup":
        # Follow-ups always post as the application: REFERENCE.md lists no username/avatar_url.
        for key in ("username", "avatar_url"):
            if p.get(key) is not None:
                errors.add((key,), "FIELD_NOT_ALLOWED", "Interaction follow-ups cannot set this.")
        return
    thread_name = p.get("thread_name")
    if thread_name is not None and not isinstance(thread_name, str):
        errors.add(("thread_name",), *type_error("string", thread_name))
    username = p.get("username")
    if kind == "edit" or username is None:
        return
    if not isinstance(username, str):
        errors.add(("username",), *type_error("string", username))
    elif not 1 <= len(username) <= 80:
        errors.add(("username",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length.")
    else:
        for word in USERNAME_FORBIDDEN:
            if word in username.lower():
                message = f'Username cannot contain "{word}"'
                errors.add(("username",), "USERNAME_INVALID_CONTAINS", message)


def _check_flags(p: dict[str, Any], kind: MessageKind, errors: FormErrors) -> None:
    flags = p.get("flags")
    if flags is None:
        return
    if not isinstance(flags, int) or isinstance(flags, bool):
        errors.add(("flags",), *type_error("integer", flags))
        return
    extra = flags & ~ALLOWED_FLAGS[kind]
    if flags < 0 or extra:
        errors.add(("flags",), "MESSAGE_FLAGS_INVALID", f"Invalid message flags: {extra or flags}.")
    if flags & FLAG_IS_COMPONENTS_V2:
        for key in ("content", "embeds", "poll"):
            if p.get(key):
                message = f"The '{key}' field cannot be used with MessageFlags.IS_COMPONENTS_V2"
                errors.add((key,), "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2", message)


def _check_mentions(p: dict[str, Any], errors: FormErrors) -> None:
    mentions = p.get("allowed_mentions")
    if mentions is None:
        return
    if not isinstance(mentions, dict):
        errors.add(("allowed_mentions",), *type_error("object", mentions))
        return
    parse = mentions.get("parse")
    parse_list = parse if isinstance(parse, list) else []
    for kind in ("users", "roles"):
        ids = mentions.get(kind)
        if isinstance(ids, list) and len(ids) > MENTION_IDS_LIMIT:
            errors.add(("allowed_mentions", kind), *max_length(MENTION_IDS_LIMIT))
        if ids and kind in parse_list:
            message = f'parse:["{kind}"] and {kind}: [ids] are mutually exclusive.'
            errors.add(("allowed_mentions",), "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE", message)


def _attachment_index(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    return None


def _plan_attachments(
    p: dict[str, Any],
    files: list[UploadedFile],
    kind: MessageKind,
    existing: set[str],
    errors: FormErrors,
) -> list[AttachmentPlan] | None:
    by_index = {f.index: f for f in files}
    listed = p.get("attachments")
    if listed is None:
        if kind in EDITS and not files:
            return None
        # Without an `attachments` list Discord attaches every uploaded file (the legacy form);
        # an edit keeps what the message had.
        kept = [AttachmentPlan(filename="", keep_id=i) for i in sorted(existing)]
        return kept + [AttachmentPlan(filename=f.filename, file=f) for f in files]
    if not isinstance(listed, list):
        errors.add(("attachments",), *type_error("array", listed))
        return []
    plans: list[AttachmentPlan] = []
    used: set[int] = set()
    for i, item in enumerate(listed):
        if not isinstance(item, dict):
            errors.add(("attachments", i), *type_error("object", item))
            continue
        index = _attachment_index(item.get("id"))
        description = item.get("description") if isinstance(item.get("description"), str) else None
        filename = item.get("filename") if isinstance(item.get("filename"), str) else None
        if index is not None and index in by_index and index not in used:
            used.add(index)
            upload = by_index[index]
            plans.append(AttachmentPlan(filename or upload.filename, upload, None, description))
        elif kind in EDITS and str(item.get("id")) in existing:
            plans.append(AttachmentPlan(filename or "", None, str(item["id"]), description))
        else:
            errors.add(
                ("attachments", i, "id"), "ATTACHMENT_NOT_FOUND", "Attachment data not found"
            )
    for upload in files:
        if upload.index not in used:
            # Discord silently drops such a file; refusing it exposes the client's mismatch.
            message = "File is not listed in attachments."
            errors.add((f"files[{upload.index}]",), "ATTACHMENT_NOT_LISTED", message)
    return plans


def validate_body(
    payload: Any,
    files: list[UploadedFile],
    *,
    kind: MessageKind,
    schemas: MessageSchemas | None,
    existing_attachments: set[str] | None = None,
) -> ValidatedBody:
    """Checks a message body the way Discord does; raises `DiscordError` on the first class of
    fault (50035 with every form error, then 30015), returns the trimmed body otherwise."""
    if not isinstance(payload, dict):
        errors = FormErrors()
        errors.add((), *type_error("object", payload))
        raise DiscordError(400, INVALID_FORM_BODY, errors=errors, category="body")
    normalized = normalize(payload)
    errors = FormErrors()
    if schemas is not None:
        for path, code, message in schemas.errors(normalized, SCHEMA_FOR[kind]):
            errors.add(path, code, message)
    _check_texts(normalized, errors)
    _check_identity(normalized, kind, errors)
    _check_flags(normalized, kind, errors)
    _check_mentions(normalized, errors)
    listed = normalized.get("attachments")
    if isinstance(listed, list) and len(listed) > ATTACHMENTS_LIMIT:
        errors.add(("attachments",), *max_length(ATTACHMENTS_LIMIT))
    plans = _plan_attachments(normalized, files, kind, existing_attachments or set(), errors)
    if errors:
        raise DiscordError(400, INVALID_FORM_BODY, errors=errors, category="body")
    if len(files) > ATTACHMENTS_LIMIT:
        raise body_error(400, MAX_ATTACHMENTS)
    return ValidatedBody(payload=normalized, attachments=plans)


def has_something_to_send(payload: dict[str, Any], attachment_count: int) -> bool:
    """Content, embeds, components, a file or a poll (else Discord answers 50006)."""
    content = payload.get("content")
    return bool(
        (isinstance(content, str) and content.strip())
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("poll")
        or attachment_count
    )


def require_something(payload: dict[str, Any], attachment_count: int) -> None:
    if not has_something_to_send(payload, attachment_count):
        raise body_error(400, EMPTY_MESSAGE)


def mentions_are_safe(payload: dict[str, Any]) -> bool:
    """`allowed_mentions` present with `parse: []`: the only form that never pings by accident."""
    mentions = payload.get("allowed_mentions")
    return isinstance(mentions, dict) and mentions.get("parse") == []
