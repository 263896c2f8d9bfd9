"""Embeds as plain Discord embed dicts, from dicts, ``discord_webhook.DiscordEmbed`` objects or
``discord.Embed`` objects; duck-typed, so neither library is imported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The embed keys Discord takes from a webhook; anything else a third-party object carries
# (helper state, output-only keys) stays behind.
EMBED_KEYS = (
    "title",
    "type",
    "description",
    "url",
    "timestamp",
    "color",
    "footer",
    "image",
    "thumbnail",
    "video",
    "provider",
    "author",
    "fields",
)
# Output-only keys Discord sets itself (it ignores them on input, the service need not see them).
_OUTPUT_ONLY = frozenset({"proxy_url", "proxy_icon_url"})


def _clean(value: Any) -> Any:
    """Drop None values, output-only keys and empty containers, recursively."""
    if isinstance(value, Mapping):
        cleaned = {
            str(k): _clean(v) for k, v in value.items() if v is not None and k not in _OUTPUT_ONLY
        }
        return {k: v for k, v in cleaned.items() if v not in ({}, [])}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v is not None]
    return value


def embed_to_dict(embed: object) -> dict[str, Any]:
    """A plain embed dict. Dicts pass through unchanged (they are the bot's own business);
    objects with ``to_dict()`` (discord.py) or a ``DiscordEmbed``'s attributes are converted."""
    if isinstance(embed, Mapping):
        return {str(k): v for k, v in embed.items()}
    to_dict = getattr(embed, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return {k: v for k, v in _clean(data).items() if k in EMBED_KEYS}
    attributes = getattr(embed, "__dict__", None)
    if attributes is not None and callable(getattr(embed, "add_embed_field", None)):
        data = {key: attributes.get(key) for key in EMBED_KEYS}
        return dict(_clean(data))
    raise TypeError(
        f"an embed must be a dict, a discord_webhook.DiscordEmbed or a discord.Embed, "
        f"not {type(embed).__name__}"
    )
