"""``/v1/destinations``: named channel webhooks, checked with Discord before they are kept."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from service.api.body import json_body, parsed_body
from service.api.deps import CallerDep
from service.api.errors import UNAUTHORIZED, body_refusals, documented
from service.api.intake import check_webhook
from service.api.schemas import (
    DESTINATION_NAME_PATTERN,
    DestinationCreate,
    DestinationPublic,
    DestinationsPublic,
)
from service.discord.webhook_url import parse_webhook_url
from service.domain import Destination
from service.errors import NotFound

router = APIRouter(
    prefix="/v1/destinations",
    tags=["destinations"],
    responses=UNAUTHORIZED,
)
Name = Annotated[str, Path(pattern=DESTINATION_NAME_PATTERN)]
_not_found: dict[int | str, dict[str, Any]] = {404: documented("No destination with that name")}


def _public(destination: Destination) -> DestinationPublic:
    return DestinationPublic(
        name=destination.name, webhook_id=destination.webhook_id, thread_id=destination.thread_id
    )


@router.put(
    "/{name}",
    response_model=DestinationPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Register (or replace) a named channel webhook",
    responses={
        200: {"model": DestinationPublic, "description": "Replaced an existing destination"},
        422: documented("Invalid URL, or Discord refused it"),
        **body_refusals("; `discord_unavailable`: Discord could not be asked right now"),
    },
    openapi_extra=json_body(DestinationCreate),
)
async def put_destination(
    name: Name, request: Request, response: Response, caller: CallerDep
) -> DestinationPublic:
    """Checks the webhook with Discord's Get Webhook (nothing is posted), then keeps it."""
    body = await parsed_body(request, DestinationCreate)
    ref = parse_webhook_url(body.webhook_url)
    channel = await check_webhook(caller.services.sender, ref.webhook_id, ref.token)
    if channel is not None:
        await caller.store.learn_webhook_channel(ref.webhook_id, channel, now=caller.now())
    # Discord takes the token: if it was marked dead, it works again (for this token only).
    await caller.store.revive_webhook(ref.webhook_id, ref.token)
    destination = Destination(
        webhook_id=ref.webhook_id, webhook_token=ref.token, thread_id=body.thread_id, name=name
    )
    created = await caller.store.put_destination(caller.tenant, destination, now=caller.now())
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(destination)


@router.get("", response_model=DestinationsPublic, summary="List destinations (no tokens)")
async def list_destinations(caller: CallerDep) -> DestinationsPublic:
    destinations = await caller.store.list_destinations(caller.tenant)
    return DestinationsPublic(items=[_public(d) for d in destinations])


@router.get(
    "/{name}",
    response_model=DestinationPublic,
    summary="Read one destination",
    responses=_not_found,
)
async def get_destination(name: str, caller: CallerDep) -> DestinationPublic:
    destination = await caller.store.get_destination(caller.tenant, name)
    if destination is None:
        raise NotFound(f"no destination named {name!r}")
    return _public(destination)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a destination (results already sent to it are kept)",
    responses=_not_found,
)
async def delete_destination(name: str, caller: CallerDep) -> Response:
    if not await caller.store.delete_destination(caller.tenant, name):
        raise NotFound(f"no destination named {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
