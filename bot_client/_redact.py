"""Masking secrets (API key, webhook and interaction tokens) out of text meant for people."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# A webhook or follow-up path: keep the id, drop the token, whatever host or API version.
_WEBHOOK_PATH = re.compile(r"(/webhooks/\d+/)[^/?#\s\"'<>]+")
_MIN_SECRET = 8  # shorter strings would mask ordinary words


def mask(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every webhook token and every given secret replaced by ``***``."""
    text = _WEBHOOK_PATH.sub(rf"\g<1>{MASK}", text)
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    return text
