"""Requests made with a tenant's bot token (``Authorization: Bot <token>``).

The same client and the same outcome values as :mod:`service.discord.sender`: nothing here
sleeps or retries. The token travels only in the Authorization header; outcomes describe an
answer by its status, code and Discord's message, so no token reaches a log line, an exception
text or a metric label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from service.discord.outcome import Disposition, SendOutcome
from service.discord.sender import CHECK_TIMEOUT, answer_outcome, failed_outcome

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


def _authorization(token: str) -> dict[str, str]:
    return {"Authorization": f"Bot {token}"}
