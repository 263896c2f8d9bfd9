"""``/v1/results``: submit, read, list and search, attempts, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import TypeAdapter

from service.api.body import (
    LARGE_BODY_BYTES,
    json_body,
    off_loop,
    optional_body,
    read_body,
    validate_json,
)
from service.api.deps import CallerDep
from service.api.errors import UNAUTHORIZED, body_refusals, documented
from service.api.intake import body_hash, resolve_destination, revive_if_working, submit_result
from service.api.schemas import (
    AttemptPublic,
    AttemptsPublic,
    RedeliverRequest,
    ResultCreate,
    ResultPublic,
    ResultsPublic,
    SearchText,
    Snowflake,
    public_from_record,
    summary_from_record,
    utc,
)
from service.domain import ResultFilter, ResultRecord, Status
from service.errors import NotFound
from service.jsonpieces import storable_json

router = APIRouter(
    prefix="/v1/results",
    tags=["results"],
    responses=UNAUTHORIZED,
)

_not_found: dict[int | str, dict[str, Any]] = {404: documented("No such result for this tenant")}


def _missing(workflow_id: str) -> NotFound:
    return NotFound(f"no result with workflow_id {workflow_id!r}")


def _parse_submission(raw: bytearray, content_type: str | None) -> tuple[ResultCreate, str, str]:
    """The submission, its body hash, and its results as the store keeps them: all the work a
    large body costs, done where :func:`off_loop` put it."""
    small = len(raw) < LARGE_BODY_BYTES  # then the pieces that keep the event loop free are moot
    payload = validate_json(ResultCreate, raw, content_type)
    return (
        payload,
        body_hash(payload, whole=small),
        storable_json(payload.results, whole=small),
    )


_PUBLIC = TypeAdapter(ResultPublic)


def _public_json(record: ResultRecord) -> bytes:
    # Bytes straight away: model_dump_json's str would be encoded again, a second copy.
    return _PUBLIC.dump_json(public_from_record(record))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ResultPublic,
    summary="Submit a finished result",
    responses={
        200: {"model": ResultPublic, "description": "The same body was submitted before"},
        409: documented("The workflow_id exists with another body"),
        422: documented(
            "A field breaks a rule; `code` names it (`missing_destination`: no destination, "
            "no interaction, and no run of this workflow id to take them from)"
        ),
        **body_refusals(),
    },
    openapi_extra=json_body(ResultCreate),
)
async def create_result(request: Request, caller: CallerDep) -> Response:
    """Commit the result durably, then answer: 202 means it is on disk and will be delivered,
    or, when its webhook is known to be dead, kept as orphaned (the status says so)."""
    # The body is read here, after the key was checked, and a large one is parsed, hashed and
    # answered in a worker thread so that the event loop keeps serving everyone else.
    raw = await read_body(request)
    size = len(raw)
    content_type = request.headers.get("content-type")
    payload, digest, results_json = await off_loop(size, _parse_submission, raw, content_type)
    outcome = await submit_result(
        store=caller.store,
        tenant=caller.tenant,
        payload=payload,
        digest=digest,
        results_json=results_json,
        now=caller.now(),
        metrics=caller.metrics,
    )
    metrics = caller.metrics
    metrics.results_accepted.labels("created" if outcome.created else "duplicate").inc()
    if outcome.created and outcome.record.status is Status.PENDING:
        caller.services.notify()
    elif outcome.created and outcome.record.orphan_reason:
        metrics.persisted.labels(outcome.record.orphan_reason).inc()
    # Serialized here in one pass: FastAPI would validate the model again and encode it twice.
    return Response(
        await off_loop(size, _public_json, outcome.record),
        status_code=status.HTTP_202_ACCEPTED if outcome.created else status.HTTP_200_OK,
        media_type="application/json",
        headers={"Location": f"/v1/results/{payload.workflow_id}"},
    )


@router.get(
    "",
    response_model=ResultsPublic,
    summary="List and search results, newest first",
    responses={422: documented("A query parameter is invalid")},
)
async def list_results(
    caller: CallerDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    url: Annotated[str | None, Query(max_length=2048)] = None,
    q: Annotated[SearchText | None, Query()] = None,
    requester_id: Annotated[Snowflake | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ResultsPublic:
    filters = ResultFilter(
        status=status_,
        url=url,
        requester_id=requester_id,
        text=q,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
    )
    page = await caller.store.list_results(caller.tenant, filters, limit=limit, cursor=cursor)
    return ResultsPublic(
        items=[summary_from_record(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{workflow_id}",
    response_model=ResultPublic,
    summary="Read one result: status, results, messages, retrieval info",
    responses=_not_found,
)
async def get_result(workflow_id: str, caller: CallerDep) -> ResultPublic:
    record = await caller.store.get_result(caller.tenant, workflow_id)
    if record is None:
        raise _missing(workflow_id)
    return public_from_record(record)


@router.get(
    "/{workflow_id}/attempts",
    response_model=AttemptsPublic,
    summary="Every delivery attempt of a result, in order",
    responses=_not_found,
)
async def list_attempts(workflow_id: str, caller: CallerDep) -> AttemptsPublic:
    attempts = await caller.store.list_attempts(caller.tenant, workflow_id)
    if attempts is None:
        raise _missing(workflow_id)
    return AttemptsPublic(
        items=[
            AttemptPublic(
                at=utc(a.at),
                part=a.part,
                route=a.route,
                outcome=a.outcome,
                http_status=a.http_status,
                discord_code=a.discord_code,
                duration_ms=a.duration_ms,
                error=a.error,
                counted=a.counts,
            )
            for a in attempts
        ]
    )


@router.post(
    "/{workflow_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ResultPublic,
    summary="Deliver a result again, optionally to another destination",
    responses={
        **_not_found,
        409: documented("The target webhook is dead for its token (Discord still refuses it)"),
        422: documented("The destination is invalid"),
        **body_refusals(),
    },
    openapi_extra=json_body(RedeliverRequest, required=False),
)
async def redeliver_result(workflow_id: str, request: Request, caller: CallerDep) -> ResultPublic:
    """All parts are sent again (earlier attempts stay in the history)."""
    body = await optional_body(request, RedeliverRequest)
    store, tenant = caller.store, caller.tenant
    existing = await store.get_result(tenant, workflow_id)
    if existing is None:
        raise _missing(workflow_id)
    wanted = body.destination if body else None
    destination = await resolve_destination(store, tenant, wanted)
    target = destination or existing.destination
    if target is not None:
        await revive_if_working(store, caller.services.sender, target)
    record = await store.redeliver(tenant, workflow_id, destination=destination, now=caller.now())
    if record is None:
        raise _missing(workflow_id)
    caller.services.notify()
    return public_from_record(record)


@router.delete(
    "/{workflow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a result and its history",
    responses=_not_found,
)
async def delete_result(workflow_id: str, caller: CallerDep) -> Response:
    if not await caller.store.delete_result(caller.tenant, workflow_id):
        raise _missing(workflow_id)
    caller.metrics.results_deleted.inc()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
