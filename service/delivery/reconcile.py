"""Reconciling a webhook part whose send went unanswered: was it posted after all?

A webhook send with no answer (a timeout, a crash between send and record) may have been posted.
Sending it again risks a duplicate; not sending it risks a loss. When the tenant's bot can read
the webhook's channel, the worker reads the channel's messages since shortly before the send and
looks for one posted by that webhook whose last line is the part's marker
(``service.discord.marker``): found, the part is delivered (with that message's id) and nothing is
sent; not found, or not readable, the part is sent again as before.

The rules here are pure; the worker does the reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from service.delivery.decide import interrupted
from service.discord.marker import carries_marker
from service.discord.snowflake import snowflake_at
from service.domain import Attempt, AttemptOutcome, ResultRecord, Route

# Discord's clock and ours differ, and a send may be answered (or posted) some time after it
# left: look from a little before the send.
LOOK_BACK_SECONDS = 60.0
MAX_PAGES = 10  # 1,000 messages: a channel busier than that since the send is resent instead


def unanswered_since(
    record: ResultRecord, history: Sequence[Attempt] | None, part: int
) -> float | None:
    """When the webhook send of ``part`` that may have been posted left, or ``None`` when no
    such send is known in this delivery round.

    Either a process stopped with the part in flight on the webhook, or the part's last attempt
    on the webhook got no answer. Only attempts of this round count: a redeliver resets the
    counted attempts, and a part of an earlier round is not this round's message.
    """
    done = {m.part for m in record.messages}
    flight = record.in_flight
    on_webhook = flight is not None and flight.part == part and flight.route is Route.WEBHOOK
    if on_webhook and interrupted(flight, done):
        assert flight is not None
        return flight.since
    if record.attempts == 0 or not history:
        return None
    own = [a for a in history if a.part == part]
    if not own:
        return None
    last = own[-1]
    if last.route is Route.WEBHOOK and last.outcome is AttemptOutcome.AMBIGUOUS:
        return last.at - last.duration_ms / 1000.0
    return None


def search_after(since: float) -> str:
    """The snowflake to read a channel from (``after=``): a little before ``since``."""
    return snowflake_at(since - LOOK_BACK_SECONDS)


def find_marked(
    messages: Iterable[Mapping[str, Any]], *, webhook_id: str, marker: str
) -> str | None:
    """The id of the message the webhook posted with this marker, if any."""
    for message in messages:
        if str(message.get("webhook_id")) != webhook_id:
            continue
        if carries_marker(message.get("content"), marker) and message.get("id") is not None:
            return str(message["id"])
    return None


def next_after(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The newest id of a page, where the next page starts."""
    ids = [int(m["id"]) for m in messages if str(m.get("id", "")).isdigit()]
    return str(max(ids)) if ids else None
