"""``/v1/bot``: the tenant's Discord bot, checked with Discord before it is kept.

The token is stored encrypted and never shown again: answers carry the bot's id and name as
Discord gave them. A bot set by ``RELAY_BOT_TOKENS`` is the operator's and is not changed here
(see :mod:`service.bots`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from service.api.body import json_body, parsed_body
from service.api.deps import CallerDep
from service.api.errors import UNAUTHORIZED, body_refusals, documented
from service.api.schemas import BotCreate, BotPublic, bot_public
from service.bots import check_bot_token, refuse_configured
from service.domain import BOT_SOURCE_API, BotConfig
from service.errors import NotFound

router = APIRouter(prefix="/v1/bot", tags=["bot"], responses=UNAUTHORIZED)

_not_found: dict[int | str, dict[str, Any]] = {404: documented("`no_bot`: the tenant has no bot")}
_configured: dict[int | str, dict[str, Any]] = {
    409: documented("`bot_configured`: RELAY_BOT_TOKENS sets this tenant's bot")
}


def _no_bot() -> NotFound:
    return NotFound("this tenant has no bot; set one with PUT /v1/bot", code="no_bot")


@router.put(
    "",
    response_model=BotPublic,
    summary="Set (or replace) the tenant's bot",
    responses={
        **_configured,
        422: documented(
            "A field breaks a rule, or `bot_token_refused`: Discord refused the token "
            "(its reason in the message); nothing was stored"
        ),
        **body_refusals("; `discord_unavailable`: Discord could not be asked right now"),
    },
    openapi_extra=json_body(BotCreate),
)
async def put_bot(request: Request, caller: CallerDep) -> BotPublic:
    """Checks the token with Discord's Get Current User (nothing is posted), then keeps it,
    encrypted."""
    body = await parsed_body(request, BotCreate)
    refuse_configured(await caller.store.get_bot(caller.tenant))
    user = await check_bot_token(caller.services.bot_sender, body.token)
    bot = BotConfig(
        tenant=caller.tenant,
        bot_id=user.id,
        username=user.username,
        token=body.token,
        dm_fallback=body.dm_fallback,
        source=BOT_SOURCE_API,
    )
    await caller.store.put_bot(bot, now=caller.now())
    return bot_public(bot)


@router.get(
    "",
    response_model=BotPublic,
    summary="Read the tenant's bot (never its token)",
    responses=_not_found,
)
async def get_bot(caller: CallerDep) -> BotPublic:
    bot = await caller.store.get_bot(caller.tenant)
    if bot is None:
        raise _no_bot()
    return bot_public(bot)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget the tenant's bot (results already accepted are kept)",
    responses={**_not_found, **_configured},
)
async def delete_bot(caller: CallerDep) -> Response:
    refuse_configured(await caller.store.get_bot(caller.tenant))
    if not await caller.store.delete_bot(caller.tenant):
        raise _no_bot()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
