"""What the dashboard's pages show, as pure functions of what the store holds: the activity
chart, ages and times as people read them, attempt outcomes as good or bad, and the filters of a
listing read from a query string."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from service.api.schemas import SearchText
from service.discord.snowflake import is_snowflake
from service.domain import AttemptCount, AttemptOutcome

WINDOW_SECONDS = 3600
SLOT_SECONDS = 60
SLOTS = WINDOW_SECONDS // SLOT_SECONDS

# An attempt that went wrong. A 429 is waited out and an interaction refused falls back to the
# webhook at once: neither is a failure of the delivery, so neither is counted here.
FAILED_OUTCOMES = frozenset(
    {
        AttemptOutcome.REFUSED,
        AttemptOutcome.DEAD_WEBHOOK,
        AttemptOutcome.GAVE_UP,
        AttemptOutcome.RETRY,
        AttemptOutcome.AMBIGUOUS,
    }
)


@dataclass(frozen=True, slots=True)
class Slot:
    delivered: int = 0
    failed: int = 0


def activity(attempts: Iterable[AttemptCount], slots: int = SLOTS) -> list[Slot]:
    """Deliveries and failures per slot, oldest first. An attempt made at the very end of the
    window (its slot is ``slots``) counts in the last slot; others outside it are left out."""
    delivered = [0] * slots
    failed = [0] * slots
    for count in attempts:
        if not 0 <= count.slot <= slots:
            continue
        slot = min(count.slot, slots - 1)
        if count.outcome is AttemptOutcome.DELIVERED:
            delivered[slot] += count.count
        elif count.outcome in FAILED_OUTCOMES:
            failed[slot] += count.count
    return [Slot(d, f) for d, f in zip(delivered, failed, strict=True)]


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # "delivered" or "failed": the CSS class that colours it
    label: str  # for the bar's <title>


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    peak: int = 0
    delivered: int = 0
    failed: int = 0


def chart(series: list[Slot], *, width: int = 600, height: int = 120) -> Chart:
    """Stacked bars (deliveries below, failures on top), scaled to the busiest slot, drawn in
    an SVG of ``width`` by ``height`` user units."""
    peak = max((s.delivered + s.failed for s in series), default=0)
    step = width / max(len(series), 1)
    bars: list[Bar] = []
    for i, slot in enumerate(series):
        minutes_ago = len(series) - i
        base = float(height)
        for kind, amount in (("delivered", slot.delivered), ("failed", slot.failed)):
            if amount == 0:
                continue
            tall = height * amount / peak
            base -= tall
            label = f"{amount} {kind}, {minutes_ago} min ago"
            bars.append(
                Bar(
                    round(i * step, 2),
                    round(base, 2),
                    round(step * 0.8, 2),
                    round(tall, 2),
                    kind,
                    label,
                )
            )
    return Chart(
        width=width,
        height=height,
        bars=bars,
        peak=peak,
        delivered=sum(s.delivered for s in series),
        failed=sum(s.failed for s in series),
    )


def age(seconds: float) -> str:
    """A duration as people say it: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def when(timestamp: float | None) -> str:
    """A time in UTC to the second, or an empty string."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(timestamp: float | None) -> str:
    """A time for a ``<time datetime>`` attribute."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def colour(value: object) -> str:
    """An embed's colour (an integer, as Discord takes it) as ``#rrggbb``; Discord's default
    grey when there is none or it is not a colour."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFF:
        return f"#{value:06x}"
    return "#4f545c"


E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Listing:
    """A listing's filters as read from the query string, and what was wrong with them."""

    status: str | None = None
    text: str | None = None
    requester_id: str | None = None
    since: float | None = None
    until: float | None = None
    cursor: str | None = None
    errors: tuple[str, ...] = ()
    # What the form shows back, as typed.
    form: dict[str, str] = field(default_factory=dict)


_FIELDS = ("status", "q", "requester_id", "since", "until")
_SEARCH_TEXT: TypeAdapter[str] = TypeAdapter(SearchText)  # the API's rules for ``q``


def read_listing(query: Mapping[str, str], statuses: type[E]) -> Listing:
    """The filters of a results or runs listing. Times are ``datetime-local`` values read as
    UTC (or full ISO 8601); a value that does not parse is named in ``errors`` and not used."""
    form = {name: query.get(name, "").strip() for name in _FIELDS}
    errors: list[str] = []
    status: str | None = form["status"] or None
    if status is not None and status not in {s.value for s in statuses}:
        errors.append(f"status must be one of {', '.join(s.value for s in statuses)}")
        status = None
    requester: str | None = form["requester_id"] or None
    if requester is not None and not is_snowflake(requester):
        errors.append("requester must be a Discord user id (17-20 digits)")
        requester = None
    times: dict[str, float | None] = {}
    for name in ("since", "until"):
        times[name] = None
        if form[name]:
            try:
                parsed = datetime.fromisoformat(form[name])
            except ValueError:
                errors.append(f"{name} must be a date and time, e.g. 2026-01-31T13:45")
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            times[name] = parsed.timestamp()
    cursor = query.get("cursor") or None
    if cursor is not None and len(cursor) > 200:
        errors.append("the page cursor is not valid")
        cursor = None
    text: str | None = form["q"] or None
    if text is not None:
        try:
            _SEARCH_TEXT.validate_python(text)
        except ValidationError as exc:
            errors.append(f"the text {exc.errors()[0]['msg'].lower()}")
            text = None
    return Listing(
        status=status,
        text=text,
        requester_id=requester,
        since=times["since"],
        until=times["until"],
        cursor=cursor,
        errors=tuple(errors),
        form=form,
    )


_REASONS = {
    "webhook_deleted": "Discord says the webhook was deleted (Unknown Webhook).",
    "webhook_unauthorized": "Discord refuses the webhook's token (it was reset or is wrong).",
    "webhook_dead": "Discord refuses the webhook.",
    "attempts_exhausted": "Discord kept failing until the retry budget ran out.",
    "interaction_rejected": "Discord refused the interaction's token, and there is no webhook.",
    "interaction_expired": "The interaction's 15-minute token ran out, and there is no webhook.",
}


def explain(reason: str | None) -> str:
    """Why a result was kept as orphaned, in words; the code itself when it has none."""
    if reason is None:
        return ""
    if reason.startswith("discord_refused_"):
        status, _, code = reason.removeprefix("discord_refused_").partition("_")
        detail = f" (HTTP {status}{f', Discord code {code}' if code else ''})"
        return f"Discord refused the message for good{detail}."
    return _REASONS.get(reason, reason)
