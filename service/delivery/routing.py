"""Which way a result goes, in the one order of fallbacks: the interaction follow-up while its
token is usable, the channel webhook, a bot message in a channel (the result's ``channel_id``,
else the requester's), a DM to the requester where the result or the tenant allows it. A route
Discord refused for this result ("not here": a dead webhook, a channel the bot cannot post in,
closed DMs) is skipped; when none is left the result is orphaned."""

from __future__ import annotations

from collections.abc import Collection

from service.discord.snowflake import interaction_expires_at
from service.domain import ResultRecord, Route

BOT_ROUTES = frozenset({Route.CHANNEL, Route.DM})


def interaction_usable(record: ResultRecord, *, now: float, margin: float) -> bool:
    """True while the interaction token has more than ``margin`` seconds to live."""
    if record.interaction is None:
        return False
    return now < interaction_expires_at(record.interaction.interaction_id) - margin


def bot_channel(record: ResultRecord) -> str | None:
    """The channel a bot message goes to: the one the result names, else the requester's."""
    if record.channel_id is not None:
        return record.channel_id
    return record.requester.channel_id if record.requester is not None else None


def has_bot_target(record: ResultRecord) -> bool:
    """Whether a bot route could ever take the result (a channel, or a requester to DM), given
    a bot: such a result outlives its webhook's death and falls back."""
    requester = record.requester
    return bot_channel(record) is not None or (requester is not None and bool(requester.user_id))


def dm_allowed(record: ResultRecord, *, tenant_default: bool) -> bool:
    """A DM to the requester is a fallback only where the result (or else the tenant) says so."""
    allowed = tenant_default if record.dm_fallback is None else record.dm_fallback
    return allowed and record.requester is not None and record.requester.user_id is not None


def choose_route(
    record: ResultRecord,
    *,
    now: float,
    margin: float,
    refused: Collection[Route] = (),
    bot_dm_default: bool | None = None,
) -> Route | None:
    """The route for the next part, or ``None`` when no route is left (orphan it).

    ``refused`` holds the routes Discord refused for this result; ``bot_dm_default`` is the
    tenant's bot's DM default, ``None`` when the tenant has no usable bot."""
    if Route.INTERACTION not in refused and interaction_usable(record, now=now, margin=margin):
        return Route.INTERACTION
    if Route.WEBHOOK not in refused and record.destination is not None:
        return Route.WEBHOOK
    if bot_dm_default is None:
        return None
    if Route.CHANNEL not in refused and bot_channel(record) is not None:
        return Route.CHANNEL
    if Route.DM not in refused and dm_allowed(record, tenant_default=bot_dm_default):
        return Route.DM
    return None
