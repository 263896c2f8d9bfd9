"""Embeds for the renderer: the default summary embed, Discord-safe copies of a bot's embeds,
and spreading embeds over messages.

Part of the renderer (see ``render.py``); pure functions over values. Every function reports
whether it had to cut or drop anything, because then the full results must be attached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from service.discord.limits import LIMITS, embed_size, is_embed_url
from service.discord.split import clamp

T = TypeVar("T")

DEFAULT_TITLE = "Analysis complete"
FAILED_TITLE = "Analysis failed"
SUMMARY_COLOR = 0x5865F2
ERROR_COLOR = 0xED4245
# Keys whose text reads as the result's summary, in order of preference.
SUMMARY_KEYS = ("summary", "description", "overview", "conclusion", "abstract")
MAX_HEADLINES = 8
HEADLINE_TEXT = 100  # a string longer than this is not a headline value
HEADLINE_KEY = 64
EMPTY_VALUE = "—"
# Discord refuses a field without a name or value; a zero-width space is its usual stand-in.
BLANK = "\u200b"
# Stricter than Python's fromisoformat, which takes forms (basic format, dates alone) that
# Discord's parser may not.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?"
)

Embed = dict[str, Any]


def prettify_key(key: str) -> str:
    """``deception_score`` / ``deceptionScore`` -> ``Deception score`` / ``Deception Score``."""
    words = re.sub(r"[_\-\s]+", " ", key)
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", words).strip()
    return words[:1].upper() + words[1:]


def _number_text(value: int | float) -> str | None:
    try:
        return repr(value) if isinstance(value, float) else str(value)
    except ValueError:  # an int too long to print (Python's digit limit): not a headline anyway
        return None


def headline_text(value: Any) -> str | None:
    """How a scalar shows as a field value, or None when it is not a short scalar."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return EMPTY_VALUE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        text = _number_text(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    return text if text is not None and len(text) <= HEADLINE_TEXT else None


def fit_embed(embed: Embed, budget: int = LIMITS.embed_total) -> bool:
    """Shrinks ``embed`` in place until it counts at most ``budget`` characters: drops fields from
    the end, then shortens the description. Returns whether anything was cut."""
    size = embed_size(embed)
    if size <= budget:
        return False
    fields: list[Embed] = embed.get("fields", [])
    while fields and size > budget:
        size -= embed_size({"fields": [fields.pop()]})
    if not fields:
        embed.pop("fields", None)
    description = embed.get("description")
    if size > budget and isinstance(description, str):
        keep = len(description) - (size - budget)
        if keep >= 1:
            embed["description"] = clamp(description, keep)[0]
        else:
            del embed["description"]
    return True


def summary_embed(
    *,
    workflow_id: str,
    results: Mapping[str, Any],
    url: str | None,
    depth: str | None,
    error: tuple[str, str] | None = None,
) -> tuple[Embed, bool]:
    """The default summary embed, and whether it shows every top-level result value whole
    (if not, the caller attaches the full results). With ``error`` (stage, message) it reports a
    failed run instead: the error's message takes the description, its stage the first field,
    and the results' own title and summary are left to the headlines and the attached JSON."""
    shown: set[str] = set()
    title = results.get("title")
    embed: Embed = {"title": DEFAULT_TITLE if error is None else FAILED_TITLE}
    if (
        error is None
        and isinstance(title, str)
        and title.strip()
        and len(title.strip()) <= LIMITS.title
    ):
        embed["title"] = title.strip()
        shown.add("title")
    if is_embed_url(url) and not str(url).startswith("attachment:"):
        embed["url"] = url
    described = None
    fields: list[Embed] = []
    if error is not None:
        stage = clamp(error[0], LIMITS.field_value)[0]
        message = clamp(error[1], LIMITS.description)[0]
        if message:
            embed["description"] = message
        if stage:
            fields.append({"name": "Failed at", "value": stage})
    for key in SUMMARY_KEYS if error is None else ():
        text = results.get(key)
        if isinstance(text, str) and text.strip():
            embed["description"], cut = clamp(text, LIMITS.description)
            described = None if cut else key
            break
    if isinstance(depth, str) and depth.strip():
        fields.append({"name": "Depth", "value": clamp(depth, 1024)[0], "inline": True})
    headline_keys: list[str] = []
    for key, value in results.items():
        name = prettify_key(str(key))
        text = headline_text(value)
        if key in shown or key == described or text is None or not name:
            continue
        if len(headline_keys) == MAX_HEADLINES or len(name) > HEADLINE_KEY:
            continue
        fields.append({"name": name, "value": text, "inline": True})
        headline_keys.append(key)
    if fields:
        embed["fields"] = fields
    embed["footer"] = {"text": clamp(f"workflow {workflow_id}", LIMITS.footer_text)[0]}
    embed["color"] = SUMMARY_COLOR if error is None else ERROR_COLOR
    description = embed.get("description")
    fixed = len(fields) - len(headline_keys)  # the stage and depth fields, before the headlines
    fit_embed(embed)
    kept = len(embed.get("fields", [])) - fixed
    shown.update(headline_keys[: max(0, kept)])
    if described is not None and embed.get("description") == description:
        shown.add(described)
    return embed, all(key in shown for key in results)


# -- a bot's own embeds ---------------------------------------------------------------------------


def _text(value: Any, limit: int) -> tuple[str | None, bool]:
    """A Discord-safe text from a bot value: numbers become text, other types are dropped."""
    if value is None:
        return None, False
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, True
    raw = value if isinstance(value, str) else _number_text(value)
    if raw is None:
        return None, True
    text, cut = clamp(raw, limit)
    return text or None, cut


def _url(value: Any) -> str | None:
    return value if is_embed_url(value) else None


def _clean_fields(raw: Any) -> tuple[list[Embed], bool]:
    if raw is None:
        return [], False
    if not isinstance(raw, list):
        return [], True
    fields: list[Embed] = []
    lost = False
    for item in raw:
        if not isinstance(item, Mapping):
            lost = True
            continue
        name, cut_name = _text(item.get("name"), LIMITS.field_name)
        value, cut_value = _text(item.get("value"), LIMITS.field_value)
        lost = lost or cut_name or cut_value
        field: Embed = {"name": name or BLANK, "value": value or BLANK}
        if isinstance(item.get("inline"), bool):
            field["inline"] = item["inline"]
        fields.append(field)
    if len(fields) > LIMITS.fields:
        return fields[: LIMITS.fields], True
    return fields, lost


def _sub(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def clean_embed(raw: Any) -> tuple[Embed | None, bool]:
    """A copy of a bot's embed holding only what Discord takes, with texts cut to their limits
    and the whole within the 6000 total; None when nothing visible is left. Also returns whether
    any text was cut or dropped."""
    if not isinstance(raw, Mapping):
        return None, True
    embed: Embed = {}
    lost = False
    for key, limit in (("title", LIMITS.title), ("description", LIMITS.description)):
        text, cut = _text(raw.get(key), limit)
        lost = lost or cut
        if text:
            embed[key] = text
    if url := _url(raw.get("url")):
        embed["url"] = url
    stamp = raw.get("timestamp")
    if isinstance(stamp, str) and _TIMESTAMP.fullmatch(stamp):
        embed["timestamp"] = stamp
    color = raw.get("color")
    if isinstance(color, int) and not isinstance(color, bool) and 0 <= color <= 0xFFFFFF:
        embed["color"] = color
    footer, author = _sub(raw, "footer"), _sub(raw, "author")
    text, cut = _text(footer.get("text"), LIMITS.footer_text)
    lost = lost or cut
    if text:  # Discord requires a footer's text
        embed["footer"] = {"text": text}
        if icon := _url(footer.get("icon_url")):
            embed["footer"]["icon_url"] = icon
    name, cut = _text(author.get("name"), LIMITS.author_name)
    lost = lost or cut
    if name:  # and an author's name
        embed["author"] = {"name": name}
        for key in ("url", "icon_url"):
            if link := _url(author.get(key)):
                embed["author"][key] = link
    for key in ("image", "thumbnail", "video"):
        if link := _url(_sub(raw, key).get("url")):
            embed[key] = {"url": link}
    provider = _sub(raw, "provider")
    provider_name, _ = _text(provider.get("name"), 256)
    provider_out = {"name": provider_name, "url": _url(provider.get("url"))}
    if any(provider_out.values()):
        embed["provider"] = {k: v for k, v in provider_out.items() if v}
    fields, cut = _clean_fields(raw.get("fields"))
    lost = lost or cut
    if fields:
        embed["fields"] = fields
    visible = ("title", "description", "fields", "footer", "author", "image", "thumbnail")
    if not any(key in embed for key in visible):
        return None, lost
    return embed, fit_embed(embed) or lost


def pack(
    items: Sequence[T], size: Callable[[T], int], *, max_count: int, max_size: int
) -> list[list[T]]:
    """Consecutive groups, in order, of at most ``max_count`` items whose sizes add up to at
    most ``max_size`` (an item over ``max_size`` alone still gets a group of its own)."""
    groups: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        item_size = size(item)
        if current and (len(current) == max_count or total + item_size > max_size):
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += item_size
    if current:
        groups.append(current)
    return groups


def pack_embeds(embeds: list[Embed]) -> list[list[Embed]]:
    """Consecutive groups of at most 10 embeds and 6000 characters, in order (each embed must
    already fit alone)."""
    return pack(embeds, embed_size, max_count=LIMITS.embeds, max_size=LIMITS.embed_total)
