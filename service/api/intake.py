"""Turning a validated submission into a stored result (the one function behind POST)."""

from __future__ import annotations

import hashlib

from fastapi.exceptions import RequestValidationError

from service.api.schemas import (
    DestinationCreate,
    DestinationIn,
    InteractionIn,
    RequesterIn,
    ResultCreate,
    RunCreate,
)
from service.config import Settings
from service.discord.outcome import Disposition
from service.discord.sender import Sender
from service.discord.snowflake import snowflake_time
from service.discord.webhook_url import parse_webhook_url
from service.domain import (
    AcceptOutcome,
    Destination,
    Interaction,
    NewResult,
    NewRun,
    Requester,
    ResultRecord,
    RunStart,
)
from service.errors import DiscordUnavailable, InvalidRequest
from service.jsonpieces import json_pieces
from service.metrics import Metrics
from service.store import Store
from service.store.base import NoDestination


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
    """A destination as sent (a webhook URL, or a registered name) as the store keeps it;
    ``None`` for none, or one naming only a bot channel (``channel_id``)."""
    if wanted is None or (wanted.webhook_url is None and wanted.name is None):
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


def _interaction(given: InteractionIn | None) -> Interaction | None:
    if given is None:
        return None
    return Interaction(
        application_id=given.application_id,
        interaction_id=given.interaction_id,
        token=given.token,
    )


def _requester(given: RequesterIn | None) -> Requester | None:
    if given is None:
        return None
    return Requester(user_id=given.user_id, guild_id=given.guild_id, channel_id=given.channel_id)


def _nowhere_to_go() -> RequestValidationError:
    # The same refusal the schema gives for a run: a result may take its run's destination.
    return RequestValidationError(
        [
            {
                "type": "missing_destination",
                "loc": ("body",),
                "msg": "give a destination (webhook_url, name or channel_id) or an "
                "interaction, or start a run with one first",
                "input": None,
            }
        ]
    )


async def submit_result(
    *,
    store: Store,
    tenant: str,
    payload: ResultCreate,
    digest: str,
    now: float,
    results_json: str | None = None,
    metrics: Metrics | None = None,
) -> AcceptOutcome:
    """Accept ``payload`` whose :func:`body_hash` is ``digest``, with its results already
    encoded as ``results_json`` when given (both computed by the caller, off the event loop for
    a large body), and finish the run of the same workflow id, if there is one: its
    interaction, destination and requester are the defaults for what the result leaves out."""
    destination = await resolve_destination(store, tenant, payload.destination)
    interaction = _interaction(payload.interaction)
    channel_id = payload.destination.channel_id if payload.destination else None
    if destination is None and interaction is None and channel_id is not None:
        await _require_bot(store, tenant)
    error = (payload.error.stage, payload.error.message) if payload.error else None
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
        destination=destination,
        interaction=interaction,
        requester=_requester(payload.requester),
        error=error,
        channel_id=channel_id,
        dm_fallback=payload.dm_fallback,
    )
    try:
        outcome = await store.accept(new, now=now)
    except NoDestination:
        raise _nowhere_to_go() from None
    if outcome.run_finished and metrics is not None:
        metrics.runs.labels("failed" if error else "finished").inc()
    return outcome


async def _require_bot(store: Store, tenant: str) -> None:
    """A result whose only way to Discord is the bot needs the tenant to have one."""
    if await store.get_bot(tenant) is None:
        raise InvalidRequest(
            "the destination names only a channel, and this tenant has no bot to post there: "
            "set one with PUT /v1/bot, or give a webhook_url or name",
            code="no_bot",
        )


def run_body_hash(payload: RunCreate) -> str:
    """Same hash for the same run, whatever its key order or whitespace."""
    fields = payload.model_dump(mode="json", exclude_none=True)
    digest = hashlib.sha256()
    for piece in json_pieces(fields, sort_keys=True, whole=True):
        digest.update(piece.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


async def start_run(
    *, store: Store, settings: Settings, tenant: str, payload: RunCreate, now: float
) -> RunStart:
    """Start the run: its hand-off time comes from the interaction's creation time."""
    interaction = _interaction(payload.interaction)
    handoff_at = None
    if interaction is not None:
        handoff_at = snowflake_time(interaction.interaction_id) + settings.handoff_at_seconds
    new = NewRun(
        tenant=tenant,
        workflow_id=payload.workflow_id,
        body_hash=run_body_hash(payload),
        timeout_seconds=payload.timeout_seconds or settings.run_timeout_seconds,
        handoff_at=handoff_at,
        title=payload.title,
        url=payload.url,
        depth=payload.depth,
        destination=await resolve_destination(store, tenant, payload.destination),
        interaction=interaction,
        requester=_requester(payload.requester),
    )
    return await store.start_run(new, now=now)


async def check_webhook(sender: Sender, webhook_id: str, token: str) -> str | None:
    """Ask Discord (Get Webhook, nothing posted) whether the webhook works with this token;
    raise the error a caller should see when it does not. Returns the channel the webhook posts
    in, when Discord said (where an unanswered part is looked for later)."""
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
    channel = check.body.get("channel_id") if check.body else None
    return channel if isinstance(channel, str) else None


async def confirm_webhook(
    store: Store, sender: Sender, webhook_id: str, token: str, *, now: float
) -> None:
    """Check the webhook with Discord (:func:`check_webhook`) and learn the channel it posts
    in; when Discord takes the token, a webhook marked dead for it works again (for this token
    only)."""
    channel = await check_webhook(sender, webhook_id, token)
    if channel is not None:
        await store.learn_webhook_channel(webhook_id, channel, now=now)
    await store.revive_webhook(webhook_id, token)


async def revive_if_working(store: Store, sender: Sender, destination: Destination) -> None:
    """A webhook marked dead for this token comes back when Discord accepts the token again
    (a redeliver after the owner fixed it); when it still refuses, the webhook stays dead."""
    if await store.dead_reason(destination.webhook_id, destination.webhook_token) is None:
        return
    check = await sender.get_webhook(destination.webhook_id, destination.webhook_token)
    if check.disposition is Disposition.DELIVERED:
        await store.revive_webhook(destination.webhook_id, destination.webhook_token)


async def redeliver(
    store: Store,
    sender: Sender,
    tenant: str,
    workflow_id: str,
    wanted: DestinationIn | None,
    *,
    now: float,
) -> ResultRecord | None:
    """Deliver a result again, to ``wanted`` or its own destination (the API's redeliver and
    the dashboard's); ``None`` when the tenant has no such result."""
    existing = await store.get_result(tenant, workflow_id)
    if existing is None:
        return None
    destination = await resolve_destination(store, tenant, wanted)
    target = destination or existing.destination
    if target is not None:
        await revive_if_working(store, sender, target)
    return await store.redeliver(tenant, workflow_id, destination=destination, now=now)


async def register_destination(
    store: Store,
    sender: Sender,
    tenant: str,
    name: str,
    wanted: DestinationCreate,
    *,
    now: float,
) -> tuple[Destination, bool]:
    """Check the webhook with Discord's Get Webhook (nothing is posted), then keep it under
    ``name``; the destination and whether the name is new. Registering a webhook again is also
    how a dead one is revived: Discord takes the token, so it works again (for this token)."""
    ref = parse_webhook_url(wanted.webhook_url)
    await confirm_webhook(store, sender, ref.webhook_id, ref.token, now=now)
    destination = Destination(
        webhook_id=ref.webhook_id, webhook_token=ref.token, thread_id=wanted.thread_id, name=name
    )
    return destination, await store.put_destination(tenant, destination, now=now)
