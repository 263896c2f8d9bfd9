"""Reading a request body the way Discord does: JSON, `multipart/form-data` or url-encoded.

The size limits apply while reading, so an oversized upload is refused (413 / 40005) without
holding more than the limit in memory. A body whose Content-Type Discord would not parse counts
as no body at all, which later reads as an empty message (50006), as on Discord.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from service.testing.errors import ENTITY_TOO_LARGE, INVALID_JSON, body_error, form_error
from service.testing.validation import UploadedFile

_FILE_PART = re.compile(r"files\[(\d{1,3})\]")
# payload_json is ordinary form text; Discord's own cap on it is far below this.
_MAX_TEXT_PART = 4 * 1024 * 1024


@dataclass(frozen=True)
class ParsedBody:
    payload: Any
    files: list[UploadedFile] = field(default_factory=list)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; Discord's parser does not.
    raise ValueError(f"invalid JSON constant {name}")


def parse_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise body_error(400, INVALID_JSON) from exc


async def read_capped(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > max_bytes:
        raise body_error(413, ENTITY_TOO_LARGE)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise body_error(413, ENTITY_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


async def _single(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _parse_multipart(request: Request, raw: bytes, file_limit: int) -> ParsedBody:
    parser = MultiPartParser(
        request.headers, _single(raw), max_files=100, max_fields=100, max_part_size=_MAX_TEXT_PART
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise form_error((), "BASE_TYPE_INVALID", f"Invalid multipart body: {exc.message}") from exc
    payload: Any = {}
    files: list[UploadedFile] = []
    seen: set[int] = set()
    try:
        for name, value in form.multi_items():
            match = _FILE_PART.fullmatch(name)
            if name == "payload_json":
                text = await value.read() if isinstance(value, UploadFile) else value
                payload = parse_json(text)
            elif match is None:
                raise form_error((name,), "BASE_TYPE_INVALID", "Unknown form part.")
            elif not isinstance(value, UploadFile) or not value.filename:
                raise form_error((name,), "BASE_TYPE_REQUIRED", "A file part needs a filename.")
            elif int(match.group(1)) in seen:
                raise form_error((name,), "BASE_TYPE_INVALID", "Duplicate file part.")
            else:
                data = await value.read()
                if len(data) > file_limit:
                    raise body_error(413, ENTITY_TOO_LARGE)
                seen.add(int(match.group(1)))
                content_type = value.headers.get("content-type")
                files.append(UploadedFile(int(match.group(1)), value.filename, data, content_type))
    finally:
        await form.close()
    return ParsedBody(payload, sorted(files, key=lambda f: f.index))


async def parse_body(request: Request, *, file_limit: int, max_files: int = 10) -> ParsedBody:
    """The body's JSON value and uploaded files. Raises `DiscordError` (400 / 413)."""
    # Room for the allowed files at the size limit plus payload_json; more is refused early.
    raw = await read_capped(request, file_limit * (max_files + 1) + _MAX_TEXT_PART)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        return ParsedBody(parse_json(raw))
    if media_type == "multipart/form-data":
        return await _parse_multipart(request, raw, file_limit)
    if media_type == "application/x-www-form-urlencoded":
        fields = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        if "payload_json" in fields:
            return ParsedBody(parse_json(fields["payload_json"]))
        return ParsedBody(fields)
    return ParsedBody({})
