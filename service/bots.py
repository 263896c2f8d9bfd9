"""The tenants' bots: checking a bot token with Discord, and the bots ``RELAY_BOT_TOKENS`` sets.

A bot is kept in the store whoever set it (``PUT /v1/bot``, or the setting at start-up), so
that every replica, the API and the worker read one place: ``Store.get_bot``. A configured bot
is the operator's: start-up writes it with ``source="config"``, and the API neither replaces
nor deletes it (``bot_configured``).

At start each configured token is checked with Get Current User, all at once, with the short
timeouts of a check. The service starts whatever Discord says:

- accepted: the bot is stored with the id and name Discord gave;
- refused: a warning names the tenant (never the token) and Discord's reason, and the tenant
  has no configured bot (one stored by an earlier start is removed);
- unanswered (Discord unreachable, rate limited): a warning, and the bot is stored unchecked,
  keeping the id and name of an earlier check of the same token, else without them; the next
  start checks it again.

Bots an earlier start configured for tenants the setting no longer names are removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from service.config import ConfiguredBot
from service.discord.bot_sender import BotSender, BotUser, bot_user
from service.discord.outcome import Disposition
from service.domain import BOT_SOURCE_CONFIG, BotConfig
from service.errors import Conflict, DiscordUnavailable, InvalidRequest
from service.store import Store

log = logging.getLogger(__name__)


async def check_bot_token(bot_sender: BotSender, token: str) -> BotUser:
    """Who the token belongs to, by Discord's Get Current User; raise the error a caller
    should see when Discord refuses it (``bot_token_refused``, with Discord's reason) or
    cannot be asked (``discord_unavailable``)."""
    outcome = await bot_sender.current_user(token)
    user = bot_user(outcome)
    if user is not None:
        return user
    if outcome.disposition in (Disposition.PERMANENT, Disposition.DEAD_WEBHOOK):
        raise InvalidRequest(
            f"Discord refused the bot token ({outcome.error})", code="bot_token_refused"
        )
    if outcome.disposition is Disposition.DELIVERED:
        raise DiscordUnavailable("Discord's answer did not name the bot; try again")
    raise DiscordUnavailable("Discord could not be reached to check the bot token; try again")


def refuse_configured(bot: BotConfig | None) -> None:
    """The API does not change a bot the operator configured: it would come back at the next
    start."""
    if bot is not None and bot.source == BOT_SOURCE_CONFIG:
        raise Conflict(
            "this tenant's bot is set by RELAY_BOT_TOKENS; change it there",
            code="bot_configured",
        )


async def sync_configured_bots(
    store: Store,
    bot_sender: BotSender,
    configured: Mapping[str, ConfiguredBot],
    *,
    now: float,
) -> None:
    """Write the bots of ``RELAY_BOT_TOKENS`` to the store, checked with Discord (see the
    module's docstring for what each answer leads to)."""
    for stale in await store.list_bots():
        if stale.source == BOT_SOURCE_CONFIG and stale.tenant not in configured:
            await store.delete_bot(stale.tenant)
            log.info(
                "removed a bot RELAY_BOT_TOKENS no longer sets", extra={"tenant": stale.tenant}
            )
    await asyncio.gather(
        *(_sync_one(store, bot_sender, tenant, bot, now=now) for tenant, bot in configured.items())
    )


async def _sync_one(
    store: Store, bot_sender: BotSender, tenant: str, bot: ConfiguredBot, *, now: float
) -> None:
    token = bot.token.get_secret_value()
    earlier = await store.get_bot(tenant)
    try:
        user = await check_bot_token(bot_sender, token)
    except InvalidRequest as refused:
        log.warning(
            "Discord refused the bot token RELAY_BOT_TOKENS gives this tenant: it has no "
            "configured bot",
            extra={"tenant": tenant, "reason": refused.message},
        )
        if earlier is not None and earlier.source == BOT_SOURCE_CONFIG:
            await store.delete_bot(tenant)
        return
    except DiscordUnavailable as unavailable:
        log.warning(
            "could not check the bot token RELAY_BOT_TOKENS gives this tenant; it is used "
            "unchecked until the next start",
            extra={"tenant": tenant, "reason": unavailable.message},
        )
        # what an earlier check of this very token found, else nothing ("")
        kept = earlier if earlier is not None and earlier.token == token else None
        user = BotUser(id=kept.bot_id if kept else "", username=kept.username if kept else "")
    await store.put_bot(
        BotConfig(
            tenant=tenant,
            bot_id=user.id,
            username=user.username,
            token=token,
            dm_fallback=bot.dm_fallback,
            source=BOT_SOURCE_CONFIG,
        ),
        now=now,
    )
