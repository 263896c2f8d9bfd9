"""The client's exceptions: one root, the service's error answers translated once, here.

RelayError                    .status_code (None without an HTTP answer), .code, .message
├── RelayUnavailable          no answer: connection refused or reset, timeout (code "unavailable")
├── SpoolError                the result could not be written to the local spool either
├── UnserializableResult      not faithful JSON (NaN, a set, bytes...); ``.field`` names where;
│                             raised before anything is sent or spooled
└── APIError                  the service answered with an error; ``code`` is the service's own;
    │                         408, 425 and 429 land here: retried, then spooled on submit
    ├── AuthenticationError   401 (missing, unknown or revoked API key)
    ├── NotFoundError         404 (no such result or destination for this tenant)
    ├── ConflictError         409 (workflow_id taken by another body; redeliver to a dead webhook)
    ├── PayloadTooLargeError  413 (body over the service's RELAY_MAX_BODY_BYTES)
    ├── ValidationError       422 (``details`` lists each failing field with its own code)
    └── ServerError           5xx, proxy pages included (retried, then spooled on submit)

Messages never hold the API key or a webhook or interaction token: they are masked on the way in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot_client._redact import mask


class RelayError(Exception):
    """Base of everything this library raises on purpose."""

    status_code: int | None = None
    code: str = "relay_error"

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        if self.status_code is None:
            return f"{self.message} ({self.code})"
        return f"{self.message} (HTTP {self.status_code}, {self.code})"


class RelayUnavailable(RelayError):
    """The service could not be reached or did not answer in time."""

    code = "unavailable"


class SpoolError(RelayError):
    """The service could not take the result now and writing the spool file failed as well."""

    code = "spool_failed"


class UnserializableResult(RelayError):
    """A submission JSON cannot carry faithfully; nothing was sent and nothing spooled.

    ``field`` is the path of the offending value (``results.scores[2]``) and ``code`` says what
    is wrong with it: ``invalid_number`` (NaN, Infinity, an integer beyond 64 bits),
    ``invalid_text`` (a lone surrogate), ``too_deep`` (more than 64 levels), ``invalid_type``
    (a set, bytes, a datetime...) or ``invalid_key`` (a key that is not a string). The message
    names the field and the value's type, never the value.
    """

    code = "unserializable_result"

    def __init__(self, field: str, code: str, problem: str) -> None:
        super().__init__(f"{field or 'the body'} {problem}", code=code)
        self.field = field


class APIError(RelayError):
    """The service answered with an error status."""

    code = "http_error"


class AuthenticationError(APIError):
    status_code = 401
    code = "unauthorized"


class NotFoundError(APIError):
    status_code = 404
    code = "not_found"


class ConflictError(APIError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(APIError):
    status_code = 413
    code = "payload_too_large"


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One failing field of a 422 answer."""

    field: str
    code: str
    message: str


class ValidationError(APIError):
    """The service refused a field (422); ``code`` names the first rule, ``details`` all."""

    status_code = 422
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: Iterable[ErrorDetail] = (),
    ) -> None:
        super().__init__(message, status_code=status_code, code=code)
        self.details = list(details)


class ServerError(APIError):
    """The service failed (5xx), e.g. 503 ``store_unavailable``."""

    code = "server_error"


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
}


def error_from_response(
    status_code: int, content: bytes, *, reason: str = "", secrets: Iterable[str | None] = ()
) -> APIError:
    """The exception for a service error answer ``{"error": {"code", "message", "details"}}``;
    anything else (a proxy's HTML page) still maps by status, with a generic code."""
    secrets = list(secrets)
    code, message = f"http_{status_code}", reason or "error"
    raw_details: list[Any] = []
    try:
        body: Any = json.loads(content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        found = error.get("details")
        raw_details = found if isinstance(found, list) else []
    message = mask(message, secrets)
    cls = _BY_STATUS.get(status_code) or (ServerError if status_code >= 500 else APIError)
    if cls is ValidationError:
        details = [
            ErrorDetail(
                field=str(d.get("field", "")),
                code=str(d.get("code", "")),
                message=mask(str(d.get("message", "")), secrets),
            )
            for d in raw_details
            if isinstance(d, dict)
        ]
        return ValidationError(message, status_code=status_code, code=code, details=details)
    return cls(message, status_code=status_code, code=code)
