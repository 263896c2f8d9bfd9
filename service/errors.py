"""The service's exception tree; the API maps each to one HTTP status in one place.

RelayError
├── NotFound            404  (also another tenant's result)
│   └── ResultGone           (a result deleted while the worker delivered it)
├── Conflict            409  (same workflow_id, different body)
├── Unauthorized        401
├── InvalidRequest      422  (a field breaks a rule; ``code`` names the rule)
├── PayloadTooLarge     413
├── BodyTimeout         408  (the body did not arrive within RELAY_BODY_TIMEOUT_SECONDS)
├── Overloaded          503  (bodies in flight are at RELAY_MAX_INFLIGHT_BYTES; retry later)
├── StoreError          503  (the database cannot be reached or refused the work)
└── DiscordUnavailable  503
"""

from __future__ import annotations


class RelayError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(RelayError):
    status_code = 404
    code = "not_found"


class ResultGone(NotFound):
    """A store write aimed at one result found none: deleted through the API meanwhile. The
    worker drops it and moves on; a distinct class so that no other lookup failure is taken
    for it."""

    code = "result_gone"


class Conflict(RelayError):
    status_code = 409
    code = "conflict"


class Unauthorized(RelayError):
    status_code = 401
    code = "unauthorized"


class InvalidRequest(RelayError):
    status_code = 422
    code = "invalid_request"


class PayloadTooLarge(RelayError):
    status_code = 413
    code = "payload_too_large"


class BodyTimeout(RelayError):
    status_code = 408
    code = "body_timeout"


class Overloaded(RelayError):
    status_code = 503
    code = "overloaded"


class StoreError(RelayError):
    status_code = 503
    code = "store_unavailable"


class DiscordUnavailable(RelayError):
    status_code = 503
    code = "discord_unavailable"
