"""``/v1/runs``: a long run's start, its progress, and reading runs back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from service.api.body import json_body, parsed_body
from service.api.deps import CallerDep
from service.api.errors import UNAUTHORIZED, body_refusals, documented
from service.api.intake import start_run
from service.api.schemas import (
    ProgressIn,
    RunCreate,
    RunPublic,
    RunsPublic,
    SearchText,
    Snowflake,
    run_public,
)
from service.domain import Progress, RunFilter, RunStatus
from service.errors import NotFound

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=UNAUTHORIZED)

_not_found: dict[int | str, dict[str, Any]] = {404: documented("No such run for this tenant")}


def _missing(workflow_id: str) -> NotFound:
    return NotFound(f"no run with workflow_id {workflow_id!r}")


def _json(run: RunPublic, code: int, **headers: str) -> Response:
    return Response(
        run.model_dump_json().encode(),
        status_code=code,
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RunPublic,
    summary="A long run has started: the service keeps its user informed until its result",
    responses={
        200: {"model": RunPublic, "description": "The same body was sent before"},
        409: documented("The workflow_id exists as a run with another body"),
        422: documented("A field breaks a rule; `code` names it"),
        **body_refusals(),
    },
    openapi_extra=json_body(RunCreate),
)
async def create_run(request: Request, caller: CallerDep) -> Response:
    """Progress shows on the deferred interaction response until the hand-off, then in one
    channel message edited in place; a run without an interaction starts in the channel."""
    payload = await parsed_body(request, RunCreate)
    start = await start_run(
        store=caller.store,
        settings=caller.services.settings,
        tenant=caller.tenant,
        payload=payload,
        now=caller.now(),
    )
    if start.created:
        caller.metrics.runs.labels(RunStatus.RUNNING.value).inc()
        caller.services.notify()
    return _json(
        run_public(start.record),
        status.HTTP_201_CREATED if start.created else status.HTTP_200_OK,
        Location=f"/v1/runs/{payload.workflow_id}",
    )


@router.put(
    "/{workflow_id}/progress",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunPublic,
    summary="The run's latest progress (latest wins)",
    responses={
        **_not_found,
        409: documented("`run_closed`: the run is finished, failed or abandoned"),
        422: documented("A field breaks a rule; `code` names it"),
        **body_refusals(),
    },
    openapi_extra=json_body(ProgressIn),
)
async def put_progress(workflow_id: str, request: Request, caller: CallerDep) -> Response:
    """Shown at most once per `RELAY_PROGRESS_INTERVAL_SECONDS`: updates in between are
    coalesced, only the latest is kept."""
    payload = await parsed_body(request, ProgressIn)
    now = caller.now()
    progress = Progress(
        stage=payload.stage,
        current=payload.current,
        total=payload.total,
        note=payload.note,
        updated_at=now,
    )
    run = await caller.store.record_progress(caller.tenant, workflow_id, progress, now=now)
    if run is None:
        raise _missing(workflow_id)
    caller.services.notify()
    return _json(run_public(run), status.HTTP_202_ACCEPTED)


@router.get(
    "",
    response_model=RunsPublic,
    summary="List and search runs, newest first",
    responses={422: documented("A query parameter is invalid")},
)
async def list_runs(
    caller: CallerDep,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    url: Annotated[str | None, Query(max_length=2048)] = None,
    q: Annotated[SearchText | None, Query()] = None,
    requester_id: Annotated[Snowflake | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RunsPublic:
    filters = RunFilter(
        status=status_,
        url=url,
        requester_id=requester_id,
        text=q,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
    )
    page = await caller.store.list_runs(caller.tenant, filters, limit=limit, cursor=cursor)
    return RunsPublic(items=[run_public(r) for r in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{workflow_id}",
    response_model=RunPublic,
    summary="Read one run: status, latest progress, hand-off, progress message, result status",
    responses=_not_found,
)
async def get_run(workflow_id: str, caller: CallerDep) -> RunPublic:
    run = await caller.store.get_run(caller.tenant, workflow_id)
    if run is None:
        raise _missing(workflow_id)
    return run_public(run)
