"""What one answer from Discord means: the error table (REFERENCE.md, "Errors: retry or not").

Every part of the service that reads an answer from Discord classifies it here: the sender (which
returns a :class:`SendOutcome`), the destinations API (which checks a webhook with Get Webhook)
and the delivery decision. Nothing here does I/O; nothing here imports from ``delivery`` or
``api``.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from service.discord.ratelimit import RateLimitInfo

UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027
_TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_NEVER_LEFT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)


class Disposition(StrEnum):
    """What an answer says about the request, before anyone decides what to do next."""

    DELIVERED = "delivered"  # 2xx: Discord took it
    RATE_LIMITED = "rate_limited"  # 429: not taken; wait and send it again
    TRANSIENT = "transient"  # 5xx, or a request that never left: may be sent again
    PERMANENT = "permanent"  # another 4xx: this payload will never be taken here
    DEAD_WEBHOOK = "dead_webhook"  # the webhook is gone or the token wrong: never call it again
    AMBIGUOUS = "ambiguous"  # sent without an answer: it may have been posted


def classify(status: int, code: int | None) -> Disposition:
    """An HTTP status and Discord's JSON error code, as a disposition."""
    if 200 <= status < 300:
        return Disposition.DELIVERED
    if status == 429:
        return Disposition.RATE_LIMITED
    if (status, code) in ((404, UNKNOWN_WEBHOOK), (401, INVALID_WEBHOOK_TOKEN)):
        return Disposition.DEAD_WEBHOOK
    if status in _TRANSIENT_STATUSES or status >= 500:
        return Disposition.TRANSIENT
    return Disposition.PERMANENT


def classify_transport(exc: httpx.HTTPError) -> Disposition:
    """A request that never left is safe to send again; one without an answer may have landed."""
    # A write that failed never reached Discord whole, and Discord acts on whole requests only.
    if isinstance(exc, _NEVER_LEFT):
        return Disposition.TRANSIENT
    return Disposition.AMBIGUOUS


# Why a request failed, from the OS-level error under httpx's: fixed words, never the error's own
# text, which may quote the request (its URL holds a token). Most specific first.
_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (socket.gaierror, "name resolution failed"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (ssl.SSLError, "TLS handshake failed"),
    (httpx.ConnectTimeout, "no connection within the timeout"),
    (httpx.ReadTimeout, "no answer within the timeout"),
    (httpx.WriteTimeout, "could not send within the timeout"),
    (httpx.PoolTimeout, "no free connection within the timeout"),
    (httpx.RemoteProtocolError, "the server closed the connection"),
    (OSError, "network error"),
)


def describe_transport(exc: BaseException) -> str:
    """``ConnectError: name resolution failed``: the error's type and a cause safe to log."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for kind, cause in _CAUSES:
        if any(isinstance(link, kind) for link in chain):
            return f"{type(exc).__name__}: {cause}"
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """One request's result as a value: the sender returns it, the delivery decision reads it."""

    disposition: Disposition
    duration_ms: float
    http_status: int | None = None
    discord_code: int | None = None
    message_id: str | None = None
    rate_limit: RateLimitInfo = field(default_factory=RateLimitInfo)
    retry_not_before: float | None = None  # seconds, from a 5xx's Retry-After
    error: str | None = None
    body: Any = None
