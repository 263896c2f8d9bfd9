"""Discord's error responses: JSON codes, the `errors` tree of 50035, and one exception type.

Route handlers raise `DiscordError`; the request wrapper turns it into the exact JSON body and
status Discord sends, and does the counter book-keeping from its `category`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
UNKNOWN_WEBHOOK = 10015
MAX_ATTACHMENTS = 30015
OLD_MESSAGE_EDITS = 30046
OPENING_DMS_TOO_FAST = 40003
ENTITY_TOO_LARGE = 40005
MISSING_ACCESS = 50001
EDIT_OF_OTHER_AUTHOR = 50005
EMPTY_MESSAGE = 50006
CANNOT_MESSAGE_USER = 50007
NOT_A_TEXT_CHANNEL = 50008
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035
INVALID_JSON = 50109
FORUM_NEEDS_THREAD = 220001
FORUM_THREAD_ID_AND_NAME = 220002
THREAD_NAME_OUTSIDE_FORUM = 220003

MESSAGES: dict[int, str] = {
    0: "404: Not Found",
    UNKNOWN_CHANNEL: "Unknown Channel",
    UNKNOWN_MESSAGE: "Unknown Message",
    UNKNOWN_USER: "Unknown User",
    UNKNOWN_WEBHOOK: "Unknown Webhook",
    MAX_ATTACHMENTS: "Maximum number of attachments in a message reached (10)",
    OLD_MESSAGE_EDITS: (
        "Maximum number of edits to messages older than 1 hour reached. Try again later"
    ),
    OPENING_DMS_TOO_FAST: "You are opening direct messages too fast",
    ENTITY_TOO_LARGE: "Request entity too large",
    MISSING_ACCESS: "Missing Access",
    EDIT_OF_OTHER_AUTHOR: "Cannot edit a message authored by another user",
    EMPTY_MESSAGE: "Cannot send an empty message",
    CANNOT_MESSAGE_USER: "Cannot send messages to this user",
    NOT_A_TEXT_CHANNEL: "Cannot send messages in a non-text channel",
    MISSING_PERMISSIONS: "Missing Permissions",
    INVALID_WEBHOOK_TOKEN: "Invalid Webhook Token",
    INVALID_FORM_BODY: "Invalid Form Body",
    INVALID_JSON: "The request body contains invalid JSON.",
    FORUM_NEEDS_THREAD: "Webhooks posted to forum channels must have a thread_name or thread_id",
    FORUM_THREAD_ID_AND_NAME: (
        "Webhooks posted to forum channels cannot have both a thread_name and thread_id"
    ),
    THREAD_NAME_OUTSIDE_FORUM: "Webhooks can only create threads in forum channels",
}

# What the request did wrong, for the counters: "body" 400s and 413s are the service's payload
# bugs; "path" covers malformed ids in the URL or query; "auth" and "missing" are dead targets.
Category = Literal["body", "path", "auth", "missing", "other"]

PathKey = str | int
ErrorPath = Sequence[PathKey]


class FormErrors:
    """Builds the `errors` object of a 50035 response, shaped like the JSON that was sent."""

    def __init__(self) -> None:
        self._tree: dict[str, Any] = {}
        self._seen: set[tuple[tuple[str, ...], str]] = set()

    def add(self, path: ErrorPath, code: str, message: str) -> None:
        keys = tuple(str(part) for part in path)
        # The schema and the cross-field rules can both find the same fault; report it once.
        if (keys, code) in self._seen:
            return
        self._seen.add((keys, code))
        node = self._tree
        for key in keys:
            node = node.setdefault(key, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self._tree)

    def to_json(self) -> dict[str, Any]:
        return self._tree

    def paths(self) -> list[str]:
        """Dotted paths with errors, e.g. `embeds.0.fields.3.value` (for logs and tests)."""
        return sorted(".".join(keys) for keys, _ in self._seen)


class DiscordError(Exception):
    """An error response in Discord's shape: `{"message": ..., "code": ..., "errors"?: ...}`."""

    def __init__(
        self,
        status: int,
        code: int,
        *,
        message: str | None = None,
        errors: FormErrors | None = None,
        category: Category = "other",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message if message is not None else MESSAGES.get(code, "Unknown Error")
        self.errors = errors
        self.category = category
        super().__init__(f"{status} {code} {self.message}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors.to_json()
        return body


def form_error(
    path: ErrorPath, code: str, message: str, *, category: Category = "body"
) -> DiscordError:
    """A 400 / 50035 with one entry in the errors tree."""
    errors = FormErrors()
    errors.add(path, code, message)
    return DiscordError(400, INVALID_FORM_BODY, errors=errors, category=category)


def unauthorized() -> DiscordError:
    """A bot route without a valid `Authorization: Bot <token>` header."""
    return DiscordError(401, 0, message="401: Unauthorized", category="auth")


def body_error(status: int, code: int) -> DiscordError:
    """A payload-caused error without an errors tree (50006, 50109, 30015, 2200xx, 40005)."""
    return DiscordError(status, code, category="body")


# Discord's wording for type errors, keyed by the JSON Schema type that was expected.
_TYPE_ERRORS: Mapping[str, tuple[str, str]] = {
    "string": ("BASE_TYPE_STRING", "Could not interpret {value} as string."),
    "integer": ("NUMBER_TYPE_COERCE", "Value {value} is not int."),
    "number": ("NUMBER_TYPE_COERCE", "Value {value} is not a valid number."),
    "boolean": ("BASE_TYPE_BOOLEAN", "Must be either true or false."),
    "array": ("LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"),
    "object": ("MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"),
}


def describe_value(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


def type_error(expected: str, value: Any) -> tuple[str, str]:
    """(code, message) for a value that is not of JSON type `expected`."""
    code, template = _TYPE_ERRORS.get(expected, ("BASE_TYPE_INVALID", "Invalid value {value}."))
    return code, template.format(value=describe_value(value))


def max_length(limit: int) -> tuple[str, str]:
    return "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."


def snowflake_error(value: Any) -> tuple[str, str]:
    return "NUMBER_TYPE_COERCE", f"Value {describe_value(value)} is not snowflake."
