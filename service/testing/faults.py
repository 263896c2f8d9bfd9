"""Injected failures: what Discord and Cloudflare do on a bad day.

Faults queue up in order and each is consumed by the next matching request, `count` times.
Pre-handling faults answer instead of Discord (nothing is stored); the `*_after_store` kinds
store the message first and then lose or delay the answer, which is the ambiguous case a sender
must survive without losing or silently duplicating a result. `30046` refuses the next message
edit as if the message were older than an hour and out of edits; only edits consume it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

FaultKind = Literal[
    "500",
    "502_html",
    "503",
    "hang",
    "hang_after_store",
    "drop",
    "drop_after_store",
    "cloudflare_429",
    "30046",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
AFTER_STORE: frozenset[str] = frozenset({"hang_after_store", "drop_after_store"})
# Faults only a message edit can meet; other requests pass them by and leave them queued.
EDIT_ONLY: frozenset[str] = frozenset({"30046"})
DEFAULT_HANG_SECONDS = 30.0
SERVICE_UNAVAILABLE_RETRY_S = 5

BAD_GATEWAY_PAGE = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
"""

GATEWAY_TIMEOUT_PAGE = BAD_GATEWAY_PAGE.replace("502 Bad Gateway", "504 Gateway Time-out")

CLOUDFLARE_BAN_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>Access denied | discord.com used Cloudflare to restrict access
</title></head><body><div id="cf-wrapper"><h1 data-translate="block_headline">Sorry, you have
been blocked</h1><span class="cf-error-code">1015</span>
<p>error code: 1015</p><p>You are being rate limited.</p></div></body></html>
"""


@dataclass
class Fault:
    """`webhook_id` and `channel_id` narrow the requests it meets (None: any). A webhook's
    requests are in its channel; a bot's requests are in the channel of their path."""

    kind: str
    webhook_id: str | None
    count: int
    seconds: float
    channel_id: str | None = None

    def meets(self, webhook_id: str | None, channel_id: str | None) -> bool:
        return self.webhook_id in (None, webhook_id) and self.channel_id in (None, channel_id)

    def one(self) -> Fault:
        return Fault(self.kind, self.webhook_id, 1, self.seconds, self.channel_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultQueue:
    """Pending faults in arrival order. Thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        *,
        webhook_id: str | None,
        count: int,
        seconds: float | None,
        channel_id: str | None = None,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if seconds is not None and (seconds < 0 or not math.isfinite(seconds)):
            raise ValueError("seconds must be a finite, non-negative number")
        hang = DEFAULT_HANG_SECONDS if seconds is None else seconds
        fault = Fault(kind, webhook_id, count, hang, channel_id)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(
        self, webhook_id: str | None, *, channel_id: str | None = None, edit: bool = False
    ) -> Fault | None:
        """Consumes one use of the first fault aimed at this webhook or channel (or at any)
        that this request can meet: edit-only faults wait for an `edit`."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.meets(webhook_id, channel_id) and (edit or fault.kind not in EDIT_ONLY):
                    fault.count -= 1
                    if fault.count == 0:
                        del self._faults[i]
                    return fault.one()
        return None

    def give_back(self, fault: Fault) -> None:
        """Returns an unused after-store or edit fault to the head of the queue (the request
        failed before storing or editing anything, so the fault must still hit the next one)."""
        with self._lock:
            self._faults.insert(0, fault.one())

    def pending(self) -> list[Fault]:
        with self._lock:
            return [replace(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def gateway_response(kind: str) -> Response:
    """The answer for a fault that replaces Discord's own (500, 502 page, 503, Cloudflare)."""
    if kind == "500":
        return JSONResponse({"message": "500: Internal Server Error", "code": 0}, status_code=500)
    if kind == "502_html":
        return HTMLResponse(BAD_GATEWAY_PAGE, status_code=502)
    if kind == "503":
        return JSONResponse(
            {"message": "503: Service Unavailable", "code": 0},
            status_code=503,
            headers={"Retry-After": str(SERVICE_UNAVAILABLE_RETRY_S)},
        )
    if kind == "cloudflare_429":
        return cloudflare_ban_response()
    if kind == "hang":
        return HTMLResponse(GATEWAY_TIMEOUT_PAGE, status_code=504)
    raise ValueError(f"fault {kind!r} has no gateway response")


def cloudflare_ban_response() -> Response:
    # A Cloudflare ban: 429 without any of Discord's headers and without JSON.
    return HTMLResponse(CLOUDFLARE_BAN_PAGE, status_code=429)


class ConnectionDropped(Exception):
    """Raised mid-response to cut the connection; uvicorn then closes the socket."""


class DropResponse(Response):
    """Starts a response with a Content-Length it never fulfils, then aborts the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionDropped("emulated connection drop")
