"""Requests made with a tenant's bot token (``Authorization: Bot <token>``).

The same client and the same outcome values as :mod:`service.discord.sender`: nothing here
sleeps or retries. The token travels only in the Authorization header; outcomes describe an
answer by its status, code and Discord's message, so no token reaches a log line, an exception
text or a metric label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.discord.outcome import Disposition, SendOutcome
from service.discord.render import Part
from service.discord.sender import CHECK_TIMEOUT, answer_outcome, failed_outcome, part_body

MESSAGES_PAGE = 100  # Get Channel Messages returns at most this many

# What a bot token may look like (base64url pieces joined by dots): anything else is refused
# before it goes near a request header, and the refusal never quotes it.
BOT_TOKEN_PATTERN = r"^[A-Za-z0-9_.-]{50,200}$"  # noqa: S105 (a pattern, not a secret)


@dataclass(frozen=True, slots=True)
class BotUser:
    """Who a bot token belongs to, as Get Current User answered."""

    id: str
    username: str


def bot_user(outcome: SendOutcome) -> BotUser | None:
    """The bot's id and name from an accepted Get Current User; ``None`` for any other answer
    (a refusal, no answer, or a body without them)."""
    body = outcome.body
    if outcome.disposition is not Disposition.DELIVERED or not isinstance(body, dict):
        return None
    user_id, username = body.get("id"), body.get("username")
    if not isinstance(user_id, str | int) or not isinstance(username, str):
        return None
    return BotUser(id=str(user_id), username=username)


@dataclass(frozen=True, slots=True)
class ChannelMessages:
    """Get Channel Messages' answer: the outcome, and the messages when it was a 200."""

    outcome: SendOutcome
    messages: tuple[dict[str, Any], ...] = field(default=())


class BotSender:
    def __init__(self, client: httpx.AsyncClient, *, api_base: str) -> None:
        self._client = client
        self._base = api_base.rstrip("/")

    async def current_user(self, token: str) -> SendOutcome:
        """Get Current User (``GET /users/@me``): checks a bot token without posting anything;
        :func:`bot_user` reads the answer. Run inside an API request, so with the short
        timeouts of a check."""
        started = time.perf_counter()
        try:
            response = await self._client.get(
                f"{self._base}/users/@me", headers=_authorization(token), timeout=CHECK_TIMEOUT
            )
        except httpx.HTTPError as exc:
            return failed_outcome(exc, started)
        return answer_outcome(response, started)

    async def create_message(
        self, token: str, channel_id: str, part: Part, *, nonce: str
    ) -> SendOutcome:
        """Create Message with ``nonce`` and ``enforce_nonce``: a resend of a part Discord took
        returns the message it has instead of posting it again."""
        payload = {**part.payload, "nonce": nonce, "enforce_nonce": True}
        return await self._send(
            token,
            "POST",
            f"/channels/{channel_id}/messages",
            **part_body(Part(payload, part.files)),
        )

    async def edit_message(
        self, token: str, channel_id: str, message_id: str, payload: dict[str, Any]
    ) -> SendOutcome:
        """Edit Message: only the bot's own messages."""
        body = {**payload, "allowed_mentions": payload.get("allowed_mentions", {"parse": []})}
        return await self._send(
            token, "PATCH", f"/channels/{channel_id}/messages/{message_id}", json=body
        )

    async def create_dm(self, token: str, recipient_id: str) -> SendOutcome:
        """Create DM (or find the open one); ``dm_channel_id`` reads the channel's id."""
        return await self._send(
            token, "POST", "/users/@me/channels", json={"recipient_id": recipient_id}
        )

    async def channel_messages(
        self, token: str, channel_id: str, *, after: str, limit: int = MESSAGES_PAGE
    ) -> ChannelMessages:
        """Get Channel Messages posted after the snowflake ``after`` (newest first)."""
        started = time.perf_counter()
        try:
            response = await self._client.get(
                f"{self._base}/channels/{channel_id}/messages",
                params={"after": after, "limit": str(limit)},
                headers=_authorization(token),
            )
        except httpx.HTTPError as exc:
            return ChannelMessages(failed_outcome(exc, started))
        outcome = answer_outcome(response, started)
        if outcome.disposition is not Disposition.DELIVERED:
            return ChannelMessages(outcome)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, list):
            return ChannelMessages(outcome)
        return ChannelMessages(outcome, tuple(m for m in body if isinstance(m, dict)))

    async def _send(self, token: str, method: str, path: str, **body: Any) -> SendOutcome:
        started = time.perf_counter()
        try:
            response = await self._client.request(
                method, f"{self._base}{path}", headers=_authorization(token), **body
            )
        except httpx.HTTPError as exc:
            return failed_outcome(exc, started)
        return answer_outcome(response, started)


def dm_channel_id(outcome: SendOutcome) -> str | None:
    """The DM channel's id from Create DM's answer (a channel object, whose ``id`` is read as a
    message id by the shared classification)."""
    return outcome.message_id if outcome.disposition is Disposition.DELIVERED else None


def _authorization(token: str) -> dict[str, str]:
    return {"Authorization": f"Bot {token}"}
