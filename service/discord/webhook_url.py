"""Strict parsing of channel webhook URLs pasted by bot authors.

Only Discord's own hosts over https are accepted, with the path
``/api[/vN]/webhooks/<snowflake>/<token>`` and nothing else. The parsed ids are what the service
keeps; outgoing URLs are always rebuilt from them on the configured API base, never reused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.discord.snowflake import SNOWFLAKE_PATTERN, is_snowflake

DISCORD_HOSTS = frozenset(
    {"discord.com", "ptb.discord.com", "canary.discord.com", "discordapp.com"}
)
_PATH = re.compile(r"/api(?:/v(?:6|7|8|9|10))?/webhooks/(?P<id>[0-9]+)/(?P<token>[^/]+)/?")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{60,100}")
_UNCLEAN = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
# The same rules as one expression, for the API schema (parse_webhook_url says which rule failed).
WEBHOOK_URL_PATTERN = (
    r"^https://(?:discord\.com|ptb\.discord\.com|canary\.discord\.com|discordapp\.com)"
    r"/api(?:/v(?:6|7|8|9|10))?/webhooks/(?:"
    + SNOWFLAKE_PATTERN.strip("^$")
    + r")/[A-Za-z0-9_-]{60,100}/?$"
)
_WEBHOOK_TOKEN_IN_TEXT = re.compile(r"(/webhooks/[0-9]+/)[A-Za-z0-9_.-]+")


class WebhookUrlError(ValueError):
    """The text is not a Discord channel webhook URL; the message never repeats the token."""


@dataclass(frozen=True, slots=True)
class WebhookRef:
    webhook_id: str
    token: str

    def __repr__(self) -> str:  # keep the token out of tracebacks and logs
        return f"WebhookRef(webhook_id={self.webhook_id!r}, token='***')"

    def url(self, api_base: str) -> str:
        return f"{api_base}/webhooks/{self.webhook_id}/{self.token}"


@functools.lru_cache(maxsize=4096)  # validation and intake both parse each submitted URL
def parse_webhook_url(text: str) -> WebhookRef:
    """Parse a pasted webhook URL, or raise :class:`WebhookUrlError` saying which rule failed."""
    if _UNCLEAN.search(text):
        # urlsplit quietly drops tabs and newlines anywhere and control characters in front, so
        # what it parsed would not be the text sent (nor what the published pattern allows).
        raise WebhookUrlError("webhook_url must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError("webhook_url is not a valid URL") from exc
    if parts.scheme != "https":
        raise WebhookUrlError("webhook_url must use https")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("webhook_url must not contain user information")
    if port is not None:
        raise WebhookUrlError("webhook_url must not name a port")
    if (parts.hostname or "") not in DISCORD_HOSTS or parts.netloc.lower() != parts.hostname:
        raise WebhookUrlError(
            "webhook_url must be on discord.com, ptb.discord.com, canary.discord.com "
            "or discordapp.com"
        )
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise WebhookUrlError("webhook_url must not have a query or fragment")
    match = _PATH.fullmatch(parts.path)
    if match is None:
        raise WebhookUrlError("webhook_url path must be /api[/vN]/webhooks/<id>/<token>")
    if not is_snowflake(match["id"]):
        raise WebhookUrlError("webhook id must be a snowflake of 17-20 digits below 2^64")
    if not _TOKEN.fullmatch(match["token"]):
        raise WebhookUrlError("webhook token must be 60-100 characters of A-Z a-z 0-9 _ -")
    return WebhookRef(webhook_id=match["id"], token=match["token"])


def mask_webhook_tokens(text: str) -> str:
    """Replace every webhook or interaction token in ``text`` with ``***``."""
    return _WEBHOOK_TOKEN_IN_TEXT.sub(r"\1***", text)
