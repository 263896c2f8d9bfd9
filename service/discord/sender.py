"""The one place that talks to Discord: builds requests, sends them, returns an outcome value.

Nothing here sleeps or retries: the worker decides what an outcome means. URLs are rebuilt from
parsed ids on the configured API base; errors are described without the URL, so no token can
leak into an attempt record or a log line.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio.lowlevel
import httpx

from service import __version__
from service.discord.outcome import (
    Disposition,
    SendOutcome,
    classify,
    classify_transport,
    describe_transport,
)
from service.discord.ratelimit import parse_rate_limit
from service.discord.render import Part
from service.domain import Destination, Interaction

USER_AGENT = f"DiscordBot (https://github.com/result-relay/result-relay, {__version__})"
# Discord sometimes answers a message only after many seconds, and a message it answers late is
# posted all the same: a read timeout as short as such a hang turns it into an ambiguous attempt
# and a duplicate. Connecting, by contrast, either works quickly or not at all.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=45.0, write=30.0, pool=10.0)
# Get Webhook runs inside an API request: its caller is waiting.
CHECK_TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)


def make_discord_client(
    transport: httpx.AsyncBaseTransport | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    """The process's one client for Discord: shared connection pool, explicit timeouts."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        follow_redirects=False,
    )


class Sender:
    def __init__(self, client: httpx.AsyncClient, *, api_base: str) -> None:
        self._client = client
        self._base = api_base.rstrip("/")

    async def warm_up(self) -> None:
        """Load what the first request would load (httpcore's async backend takes some 50 ms to
        import), so that the first result of a burst does not wait for it."""
        await anyio.lowlevel.checkpoint()

    async def execute(self, destination: Destination, part: Part) -> SendOutcome:
        """Execute Webhook with ``?wait=true``, so the message id comes back."""
        params = {"wait": "true"}
        if destination.thread_id:
            params["thread_id"] = destination.thread_id
        url = f"{self._base}/webhooks/{destination.webhook_id}/{destination.webhook_token}"
        return await self._send("POST", url, part, params)

    async def follow_up(self, interaction: Interaction, part: Part) -> SendOutcome:
        """An interaction follow-up (always answered with the message)."""
        url = f"{self._base}/webhooks/{interaction.application_id}/{interaction.token}"
        return await self._send("POST", url, part, {})

    async def edit_original(self, interaction: Interaction, payload: dict[str, Any]) -> SendOutcome:
        """Edit the interaction's deferred response (``@original``) while its token lives."""
        url = f"{self._base}/webhooks/{interaction.application_id}/{interaction.token}"
        return await self._send("PATCH", f"{url}/messages/@original", Part(payload), {})

    async def edit_message(
        self, destination: Destination, message_id: str, payload: dict[str, Any]
    ) -> SendOutcome:
        """Edit a message the webhook posted, in place (in its thread, if it has one)."""
        params = {"thread_id": destination.thread_id} if destination.thread_id else {}
        url = f"{self._base}/webhooks/{destination.webhook_id}/{destination.webhook_token}"
        return await self._send("PATCH", f"{url}/messages/{message_id}", Part(payload), params)

    async def get_webhook(self, webhook_id: str, token: str) -> SendOutcome:
        """Get Webhook with token: checks a URL without posting anything."""
        started = time.perf_counter()
        try:
            response = await self._client.get(
                f"{self._base}/webhooks/{webhook_id}/{token}", timeout=CHECK_TIMEOUT
            )
        except httpx.HTTPError as exc:
            return failed_outcome(exc, started)
        return answer_outcome(response, started)

    async def _send(self, method: str, url: str, part: Part, params: dict[str, str]) -> SendOutcome:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, url, params=params, **part_body(part))
        except httpx.HTTPError as exc:
            return failed_outcome(exc, started)
        return answer_outcome(response, started)


def part_body(part: Part) -> dict[str, Any]:
    """The request body of a part, as httpx takes it: JSON, or with files ``multipart/form-data``
    (``payload_json`` and ``files[n]``)."""
    if not part.files:
        return {"json": part.payload}
    files = [
        (f"files[{i}]", (f.filename, f.content, f.content_type)) for i, f in enumerate(part.files)
    ]
    return {"data": {"payload_json": json.dumps(part.payload, ensure_ascii=False)}, "files": files}


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def failed_outcome(exc: httpx.HTTPError, started: float) -> SendOutcome:
    """A request that got no answer (``started``: its ``time.perf_counter()``)."""
    return SendOutcome(
        disposition=classify_transport(exc),
        duration_ms=_elapsed(started),
        error=describe_transport(exc),  # never str(exc): it may quote the request
    )


def answer_outcome(response: httpx.Response, started: float) -> SendOutcome:
    """Discord's answer as an outcome (``started``: the request's ``time.perf_counter()``);
    the error names the status, code and Discord's message, never the URL."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:200]
    code = body.get("code") if isinstance(body, dict) else None
    code = code if isinstance(code, int) else None
    disposition = classify(response.status_code, code)
    message_id = None
    if disposition is Disposition.DELIVERED and isinstance(body, dict):
        message_id = str(body.get("id")) if body.get("id") is not None else None
    error = None
    if disposition is not Disposition.DELIVERED:
        detail = body.get("message") if isinstance(body, dict) else None
        error = f"HTTP {response.status_code}" + (f" {code}" if code else "")
        error += f": {str(detail)[:200]}" if detail else ""
    retry_after = response.headers.get("retry-after")
    not_before = None
    if disposition is Disposition.TRANSIENT and retry_after is not None:
        try:
            not_before = float(retry_after)
        except ValueError:
            not_before = None
    return SendOutcome(
        disposition=disposition,
        duration_ms=_elapsed(started),
        http_status=response.status_code,
        discord_code=code,
        message_id=message_id,
        rate_limit=parse_rate_limit(response.status_code, response.headers, body),
        retry_not_before=not_before,
        error=error,
        body=body if isinstance(body, dict) else None,
    )
