"""Pure ASGI middleware: the API key before any body, bounds on bodies (size, bytes in flight,
time to arrive), and one structured log line per request."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import Authenticator
from service.errors import RelayError

access_log = logging.getLogger("service.access")


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class ByteBudget:
    """Bytes of request bodies received or held at once, across all requests.

    Used from the event loop only, so plain arithmetic is atomic: no lock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0

    def take(self, amount: int) -> bool:
        if self.used + amount > self.capacity:
            return False
        self.used += amount
        return True

    def give_back(self, amount: int) -> None:
        self.used -= amount


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (-1 when unreadable) and whether the body is chunked."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = -1
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return declared, chunked


async def refuse(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    on_error: Callable[[str], None] | None = None,
    close: bool = True,
) -> None:
    """Answer an error before (or instead of) the app; ``close`` the connection when a body may
    be left unread, so that it never is read."""
    scope.setdefault("state", {})["error_code"] = code
    if on_error is not None:
        on_error(code)
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *([(b"connection", b"close")] if close else []),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuthFirstMiddleware:
    """Check the API key of every ``/v1`` request before anything reads its body.

    FastAPI reads and parses a body before it resolves dependencies; here a caller without a
    valid key costs a header lookup, whatever (or however slowly) it sends. The tenant goes into
    the request's state for the route's ``Caller``.
    """

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, on_error: Callable[[str], None]
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        authorization = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"authorization"
            ),
            None,
        )
        try:
            tenant = await self.authenticator.tenant_for(authorization)
        except RelayError as exc:
            extra = [(b"www-authenticate", b"Bearer")] if exc.status_code == 401 else []
            declared, chunked = _body_headers(scope)
            has_body = chunked or (declared is not None and declared != 0)
            await refuse(
                scope, send, exc.status_code, exc.code, exc.message, extra, self.on_error, has_body
            )
            return
        scope.setdefault("state", {})["tenant"] = tenant
        await self.app(scope, receive, send)


class BodyGuardMiddleware:
    """Bound every request body in size, in bytes in flight across requests, and in time.

    * Over ``max_bytes`` (declared, or counted as a chunked body streams): 413.
    * Bodies received or held by all requests together stay within ``budget``: a declared
      ``Content-Length`` is reserved before any byte is read, a chunked body as it arrives; a
      request that does not fit gets 503 ``overloaded`` with ``Retry-After``. The reservation is
      held until the request ends, however it ends, because the app holds the body (and what it
      parses from it) until then.
    * A body not fully arrived ``timeout`` seconds after the request began: 408 ``body_timeout``.

    Each refusal closes the connection. The app then sees a disconnect, so it stops reading
    and nothing of the body is stored; its own answer is dropped for the refusal.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        budget: ByteBudget,
        timeout: float,
        on_error: Callable[[str], None],
        retry_after: int = 1,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget
        self.timeout = timeout
        self.on_error = on_error
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if not chunked and (declared is None or declared <= 0):  # no body
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, "payload_too_large")
            return
        held = 0
        if not chunked and declared is not None:
            if not self.budget.take(declared):
                await self._refuse(scope, send, "overloaded")
                return
            held = declared
        deadline = anyio.current_time() + self.timeout
        received = 0
        complete = started = False
        refusal: str | None = None

        async def guarded_receive() -> Message:
            # After a refusal the app sees a disconnect, so it stops reading whatever it does
            # with the error (frameworks turn exceptions raised here into their own 400s).
            nonlocal received, complete, held, refusal
            if refusal is not None:
                return {"type": "http.disconnect"}
            if complete:
                return await receive()  # only the disconnect is left: no deadline for it
            with anyio.move_on_after(deadline - anyio.current_time()):
                message = await receive()
                if message["type"] == "http.request":
                    chunk = len(message.get("body", b""))
                    received += chunk
                    complete = not message.get("more_body", False)
                    if received > self.max_bytes:
                        refusal = "payload_too_large"
                    elif held < received:  # chunked: reserve what arrived beyond the hold
                        if self.budget.take(received - held):
                            held = received
                        else:
                            refusal = "overloaded"
                return message if refusal is None else {"type": "http.disconnect"}
            refusal = "body_timeout"
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the refusal below answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            try:
                await self.app(scope, guarded_receive, guarded_send)
            except Exception:
                if refusal is None or started:
                    raise
            if refusal is not None and not started:
                await self._refuse(scope, send, refusal)
        finally:
            self.budget.give_back(held)

    async def _refuse(self, scope: Scope, send: Send, code: str) -> None:
        if code == "payload_too_large":
            message = f"the request body is larger than {self.max_bytes} bytes"
            await refuse(scope, send, 413, code, message, on_error=self.on_error)
        elif code == "overloaded":
            message = "too many request bodies are in flight; retry after Retry-After seconds"
            extra = [(b"retry-after", str(self.retry_after).encode())]
            await refuse(scope, send, 503, code, message, extra, self.on_error)
        else:
            message = f"the request body did not arrive within {self.timeout:g} seconds"
            await refuse(scope, send, 408, code, message, on_error=self.on_error)


class AccessLogMiddleware:
    """Log method, path (never the query), status, duration and tenant, once per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            state: dict[str, Any] = scope.get("state", {})
            fields: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
            }
            if "tenant" in state:
                fields["tenant"] = state["tenant"]
            if "error_code" in state:
                fields["error_code"] = state["error_code"]
            access_log.info("request", extra=fields)
