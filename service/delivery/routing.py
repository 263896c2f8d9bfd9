"""Which way a result goes: the interaction follow-up while its token is usable, else the
channel webhook."""

from __future__ import annotations

from service.discord.snowflake import interaction_expires_at
from service.domain import ResultRecord, Route


def interaction_usable(record: ResultRecord, *, now: float, margin: float) -> bool:
    """True while the interaction token has more than ``margin`` seconds to live."""
    if record.interaction is None:
        return False
    return now < interaction_expires_at(record.interaction.interaction_id) - margin


def choose_route(
    record: ResultRecord, *, now: float, margin: float, interaction_rejected: bool = False
) -> Route | None:
    """The route for the next part, or ``None`` when no route is left (orphan it)."""
    if not interaction_rejected and interaction_usable(record, now=now, margin=margin):
        return Route.INTERACTION
    if record.destination is not None:
        return Route.WEBHOOK
    return None
