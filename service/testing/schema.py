"""Validation of message bodies against Discord's own OpenAPI 3.1 description.

The spec is 1.2 MB, so it is loaded and compiled once per process and path, on first use. Its
`#/components/schemas/...` references resolve through a `referencing` Registry holding the whole
document. jsonschema's errors are translated into Discord's 50035 `errors` tree entries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.testing.errors import describe_value, max_length, snowflake_error, type_error

log = logging.getLogger(__name__)

SPEC_ENV = "RELAY_DISCORD_SPEC"
SPEC_URI = "urn:discord:openapi"
EXECUTE_SCHEMA = "#/components/schemas/IncomingWebhookRequestPartial"
EDIT_PATH = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
# The bot-token routes: Create Message and Edit Message.
CREATE_SCHEMA = "#/components/schemas/MessageCreateRequest"
BOT_EDIT_SCHEMA = "#/components/schemas/MessageEditRequestPartial"

SchemaKind = Literal["execute", "edit", "create", "bot_edit"]
ErrorEntry = tuple[tuple[str | int, ...], str, str]

_URL_SCHEMES = ("http", "https")
# `attachment://name` is how an embed points at an uploaded file; Discord accepts it in embeds.
_EMBED_SCHEMES = (*_URL_SCHEMES, "attachment")


# The part of Discord's description the emulator uses, shipped in the package (MIT, licence
# beside it; `python -m service.testing.spec_subset` regenerates it from the full file).
PACKAGED_SPEC = Path(__file__).resolve().parent / "discord_openapi.json"


def default_spec_path() -> Path:
    """The subset of Discord's description shipped with the package."""
    return PACKAGED_SPEC


def resolve_spec_path(explicit: str | Path | None) -> Path | None:
    """The spec to use: the argument, else $RELAY_DISCORD_SPEC, else the packaged subset."""
    for candidate in (explicit, os.environ.get(SPEC_ENV), default_spec_path()):
        if candidate:
            path = Path(candidate)
            if path.is_file():
                return path.resolve()
    return None


def _check_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in _EMBED_SCHEMES:
        return False
    return parts.scheme == "attachment" or bool(parts.netloc)


def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_snowflake(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**64
    if isinstance(value, str):
        return value.isdecimal() and value.isascii() and int(value) < 2**64
    return True


def _format_checker() -> FormatChecker:
    # Only the formats Discord enforces; jsonschema's defaults would need optional packages and
    # would silently skip checks whose package is missing.
    checker = FormatChecker(formats=())
    checker.checks("uri")(_check_uri)
    checker.checks("date-time")(_check_date_time)
    checker.checks("snowflake")(_check_snowflake)
    return checker


def _prepare(spec: dict[str, Any]) -> dict[str, Any]:
    # Discord accepts snowflakes as JSON integers as well as strings (its docs send
    # `attachments: [{"id": 0}]`), although the spec types SnowflakeType as a string only.
    schemas = spec["components"]["schemas"]
    schemas["SnowflakeType"] = {"type": ["string", "integer"], "format": "snowflake"}
    return spec


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(
        urllib.parse.quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in parts
    )


@dataclass(frozen=True)
class MessageSchemas:
    """Compiled validators for Execute Webhook and Edit Webhook Message bodies, and for the
    bot routes' Create Message and Edit Message bodies."""

    execute: Draft202012Validator
    edit: Draft202012Validator
    create: Draft202012Validator
    bot_edit: Draft202012Validator
    path: Path

    def errors(self, payload: Any, kind: SchemaKind) -> list[ErrorEntry]:
        validator = {
            "execute": self.execute,
            "edit": self.edit,
            "create": self.create,
            "bot_edit": self.bot_edit,
        }[kind]
        entries: list[ErrorEntry] = []
        for error in validator.iter_errors(payload):
            entries.extend(translate(error))
        return entries


def _compile(path: Path) -> MessageSchemas:
    spec = _prepare(json.loads(path.read_text(encoding="utf-8")))
    resource: Resource[Any] = DRAFT202012.create_resource(spec)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    edit_ref = _pointer(
        "paths", EDIT_PATH, "patch", "requestBody", "content", "application/json", "schema"
    )
    checker = _format_checker()

    def build(ref: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": SPEC_URI + ref}, registry=registry, format_checker=checker
        )

    return MessageSchemas(
        execute=build(EXECUTE_SCHEMA),
        edit=build(edit_ref),
        create=build(CREATE_SCHEMA),
        bot_edit=build(BOT_EDIT_SCHEMA),
        path=path,
    )


_cache: dict[Path, MessageSchemas] = {}
_cache_lock = threading.Lock()
_warned_missing = False


def load_schemas(explicit: str | Path | None = None) -> MessageSchemas | None:
    """The compiled validators for the spec that `explicit` designates, cached per process."""
    global _warned_missing
    path = resolve_spec_path(explicit)
    if path is None:
        if not _warned_missing:
            _warned_missing = True
            log.warning("discord openapi spec not found: schema validation is off")
        return None
    with _cache_lock:
        schemas = _cache.get(path)
        if schemas is None:
            schemas = _cache[path] = _compile(path)
            log.info("discord openapi spec compiled", extra={"spec_path": str(path)})
        return schemas


def _is_null_branch(error: ValidationError) -> bool:
    return bool(error.validator == "type" and error.validator_value == "null")


def translate(error: ValidationError) -> list[ErrorEntry]:
    """jsonschema error -> Discord `_errors` entries at the instance path."""
    path = tuple(error.absolute_path)
    validator, expected, value = error.validator, error.validator_value, error.instance
    if validator in ("oneOf", "anyOf"):
        context = [e for e in error.context or [] if not _is_null_branch(e)]
        if context and all(e.validator in ("const", "enum") for e in context):
            choices = tuple(e.validator_value for e in context if e.validator == "const")
            return [(path, "BASE_TYPE_CHOICES", f"Value must be one of {choices}.")]
        # A branch of the value's own type says what is wrong with it (a 26-character string
        # nonce is too long, not "not an integer").
        fitting = [
            e for e in context if e.validator != "type" or e.absolute_path != error.absolute_path
        ]
        if context:
            return translate(best_match(fitting or context))
        return [(path, "BASE_TYPE_INVALID", "Invalid value.")]
    schema = error.schema if isinstance(error.schema, dict) else {}
    if schema.get("format") == "snowflake":
        return [(path, *snowflake_error(value))]
    if validator == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        return [((*path, k), "BASE_TYPE_REQUIRED", "This field is required") for k in missing]
    if validator == "type":
        types = [expected] if isinstance(expected, str) else [t for t in expected if t != "null"]
        return [(path, *type_error(types[0] if types else "object", value))]
    if validator in ("maxLength", "maxItems"):
        if validator == "maxLength" and "minLength" in schema and schema["minLength"] > 0:
            bounds = f"{schema['minLength']} and {expected}"
            return [(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {bounds} in length.")]
        return [(path, *max_length(expected))]
    if validator in ("minLength", "minItems"):
        if validator == "minLength" and "maxLength" in schema:
            bounds = f"{expected} and {schema['maxLength']}"
            return [(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {bounds} in length.")]
        return [(path, "BASE_TYPE_MIN_LENGTH", f"Must be {expected} or more in length.")]
    if validator == "maximum":
        return [(path, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {expected}.")]
    if validator == "minimum":
        message = f"int value should be greater than or equal to {expected}."
        return [(path, "NUMBER_TYPE_MIN", message)]
    if validator in ("const", "enum"):
        choices = (expected,) if validator == "const" else tuple(expected)
        return [(path, "BASE_TYPE_CHOICES", f"Value must be one of {choices}.")]
    if validator == "uniqueItems":
        return [(path, "LIST_ITEM_VALUE_DUPLICATE", "Values must be unique.")]
    if validator == "format":
        return [(path, *_format_error(expected, value))]
    return [(path, "BASE_TYPE_INVALID", f"Invalid value {describe_value(value)}.")]


def _format_error(fmt: str, value: Any) -> tuple[str, str]:
    if fmt == "uri" and isinstance(value, str):
        scheme = urllib.parse.urlsplit(value).scheme
        if scheme and scheme not in _EMBED_SCHEMES:
            allowed = ", ".join(repr(s) for s in _URL_SCHEMES)
            return (
                "URL_TYPE_INVALID_SCHEME",
                f'Scheme "{scheme}" is not supported. Scheme must be one of ({allowed}).',
            )
        return "URL_TYPE_INVALID_URL", "Not a well formed URL."
    if fmt == "date-time":
        return "DATE_TYPE_PARSE", f"Could not parse {describe_value(value)}. Should be ISO8601."
    return "BASE_TYPE_INVALID", f"Invalid value {describe_value(value)}."
