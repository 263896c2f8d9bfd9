"""Turning a validated submission into a stored result (the one function behind POST)."""

from __future__ import annotations

import hashlib

from service.api.schemas import DestinationIn, ResultCreate
from service.discord.outcome import Disposition
from service.discord.sender import Sender
from service.discord.webhook_url import parse_webhook_url
from service.domain import AcceptOutcome, Destination, Interaction, NewResult, Requester
from service.errors import DiscordUnavailable, InvalidRequest
from service.jsonpieces import json_pieces
from service.store import Store


def body_hash(payload: ResultCreate, *, whole: bool = False) -> str:
    """Same hash for the same submission, whatever its key order or whitespace. ``whole``: the
    submission is small, so its canonical text is made in one piece (see ``json_pieces``)."""
    fields = payload.model_dump(mode="json", exclude_none=True, exclude={"results"})
    # Parsed from JSON, the results already are what mode="json" would make of them: dumping
    # them again would copy megabytes of objects to hash the very same text.
    fields["results"] = payload.results
    digest = hashlib.sha256()
    # In pieces: the canonical text is never held whole, and a worker thread hashing megabytes
    # lets the event loop run between them. surrogatepass: a lone surrogate (a 422 by the
    # schema's rules) must not make hashing fail.
    for piece in json_pieces(fields, sort_keys=True, whole=whole):
        digest.update(piece.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


async def resolve_destination(
    store: Store, tenant: str, wanted: DestinationIn | None
) -> Destination | None:
    """A destination as sent (a webhook URL, or a registered name) as the store keeps it."""
    if wanted is None:
        return None
    if wanted.webhook_url is not None:
        ref = parse_webhook_url(wanted.webhook_url)
        return Destination(
            webhook_id=ref.webhook_id, webhook_token=ref.token, thread_id=wanted.thread_id
        )
    assert wanted.name is not None
    named = await store.get_destination(tenant, wanted.name)
    if named is None:
        raise InvalidRequest(
            f"no destination named {wanted.name!r}; register it with PUT /v1/destinations/{{name}}",
            code="unknown_destination",
        )
    if wanted.thread_id is None:
        return named
    return Destination(
        webhook_id=named.webhook_id,
        webhook_token=named.webhook_token,
        thread_id=wanted.thread_id,
        name=named.name,
    )


async def submit_result(
    *,
    store: Store,
    tenant: str,
    payload: ResultCreate,
    digest: str,
    now: float,
    results_json: str | None = None,
) -> AcceptOutcome:
    """Accept ``payload`` whose :func:`body_hash` is ``digest``, with its results already
    encoded as ``results_json`` when given (both computed by the caller, off the event loop for
    a large body)."""
    interaction = payload.interaction
    requester = payload.requester
    new = NewResult(
        tenant=tenant,
        workflow_id=payload.workflow_id,
        body_hash=digest,
        results=payload.results,
        results_json=results_json,
        url=payload.url,
        depth=payload.depth,
        message=payload.message.model_dump(mode="json", exclude_none=True)
        if payload.message
        else None,
        destination=await resolve_destination(store, tenant, payload.destination),
        interaction=Interaction(
            application_id=interaction.application_id,
            interaction_id=interaction.interaction_id,
            token=interaction.token,
        )
        if interaction
        else None,
        requester=Requester(
            user_id=requester.user_id, guild_id=requester.guild_id, channel_id=requester.channel_id
        )
        if requester
        else None,
    )
    return await store.accept(new, now=now)


async def check_webhook(sender: Sender, webhook_id: str, token: str) -> None:
    """Ask Discord (Get Webhook, nothing posted) whether the webhook works with this token;
    raise the error a caller should see when it does not."""
    check = await sender.get_webhook(webhook_id, token)
    if check.disposition is Disposition.DEAD_WEBHOOK:
        raise InvalidRequest(
            "Discord says this webhook does not exist or its token is wrong",
            code="webhook_not_found",
        )
    if check.disposition is Disposition.PERMANENT:
        raise InvalidRequest(f"Discord refused the webhook ({check.error})", code="webhook_refused")
    if check.disposition is not Disposition.DELIVERED:
        raise DiscordUnavailable("Discord could not be reached to check the webhook; try again")


async def revive_if_working(store: Store, sender: Sender, destination: Destination) -> None:
    """A webhook marked dead for this token comes back when Discord accepts the token again
    (a redeliver after the owner fixed it); when it still refuses, the webhook stays dead."""
    if await store.dead_reason(destination.webhook_id, destination.webhook_token) is None:
        return
    check = await sender.get_webhook(destination.webhook_id, destination.webhook_token)
    if check.disposition is Disposition.DELIVERED:
        await store.revive_webhook(destination.webhook_id, destination.webhook_token)
