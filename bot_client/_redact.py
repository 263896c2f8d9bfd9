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


# Text the bot did not write (an exception's message) may hold secrets nobody named: mask what
# looks like one. Opaque runs need a digit and a letter, so long identifiers and words survive.
_ASSIGNED = re.compile(
    r"(?i)\b(token|api[_-]?key|secret|password|authorization)([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_OPAQUE = re.compile(r"(?<![\w.-])(?=[\w.-]*\d)(?=[\w.-]*[A-Za-z])[\w.-]{24,}(?![\w.-])", re.ASCII)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``mask`` plus whatever looks like a secret: a ``Bearer`` credential, the value of
    ``token=``, ``api_key:``, ``password=``..., and any opaque run of 24 or more letters, digits,
    ``_``, ``-`` and ``.`` with at least one digit (a Discord bot or interaction token, a key)."""
    text = mask(text, secrets)
    text = _BEARER.sub(rf"\g<1>\g<2>{MASK}", text)  # first: "Authorization: Bearer x"
    text = _ASSIGNED.sub(rf"\g<1>\g<2>{MASK}", text)
    return _OPAQUE.sub(MASK, text)
