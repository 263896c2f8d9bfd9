"""``/ui``: the operator dashboard's pages and forms.

Every page reads the same store, and every form calls the same functions, as the API does
(no request to the service itself). A page is scoped to the signed-in tenant exactly as the API
is: another tenant's result or run is a 404 page. Tokens and keys are never rendered: pages get
the public fields only (webhook ids, names), as the API's responses do.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from service.api.intake import confirm_webhook, redeliver, register_destination
from service.api.schemas import (
    DESTINATION_NAME_PATTERN,
    DestinationCreate,
    DestinationIn,
)
from service.delivery.worker import render_record
from service.domain import (
    Destination,
    Page,
    ResultFilter,
    ResultRecord,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    Status,
)
from service.errors import RelayError
from service.services import Services
from service.ui import views
from service.ui.session import (
    COOKIE_NAME,
    Session,
    SessionSigner,
    cookie_secure,
    csrf_matches,
    new_session,
)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters.update(
    age=views.age, when=views.when, iso=views.iso, colour=views.colour, explain=views.explain
)
PAGE_SIZE = 50

router = APIRouter(prefix="/ui", include_in_schema=False)


class SignInNeeded(Exception):
    """A page asked for without a valid session: answered with a redirect to sign in."""


@dataclass(frozen=True, slots=True)
class Operator:
    """A signed-in request: its tenant, its session (for the forms' CSRF token), the services."""

    tenant: str
    session: Session
    services: Services

    def now(self) -> float:
        return self.services.clock()


def _signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.ui_signer
    return signer


def _session(request: Request) -> Session | None:
    services: Services = request.app.state.services
    return _signer(request).loads(request.cookies.get(COOKIE_NAME), now=services.clock())


async def _operator(request: Request) -> Operator:
    session = _session(request)
    if session is None or session.tenant is None:
        raise SignInNeeded
    services: Services = request.app.state.services
    request.state.tenant = session.tenant  # for the access log
    return Operator(tenant=session.tenant, session=session, services=services)


OperatorDep = Annotated[Operator, Depends(_operator)]


def _set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        _signer(request).dumps(session),
        max_age=max(int(session.expires_at - request.app.state.services.clock()), 0),
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request.url.scheme, request.headers.get("x-forwarded-proto")),
    )


def _page(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    operator: Operator | None = None,
    status_code: int = 200,
) -> Response:
    full = {
        "tenant": operator.tenant if operator else None,
        "csrf": operator.session.csrf if operator else None,
        **context,
    }
    return TEMPLATES.TemplateResponse(request, name, full, status_code=status_code)


def _see(path: str, **query: str) -> RedirectResponse:
    target = f"{path}?{urlencode(query)}" if query else path
    return RedirectResponse(target, status_code=303)


def not_found_page(request: Request, operator: Operator | None, what: str) -> Response:
    return _page(
        request,
        "error.html",
        {"title": "Not found", "message": what},
        operator=operator,
        status_code=404,
    )


def forbidden_page(request: Request, operator: Operator | None) -> Response:
    message = (
        "The form's security token is missing or does not belong to this session. Nothing was "
        "changed. Reload the page and try again."
    )
    return _page(
        request,
        "error.html",
        {"title": "Refused", "message": message},
        operator=operator,
        status_code=403,
    )


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _csrf_refused(request: Request, operator: Operator, form: Mapping[str, str]) -> Response | None:
    if csrf_matches(operator.session, form.get("csrf")):
        return None
    return forbidden_page(request, operator)


def _form_errors(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p != "__root__")
        messages.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return messages


# -- sign in and out -------------------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    services: Services = request.app.state.services
    session = _session(request)
    if session is not None and session.tenant is not None:
        return _see("/ui/")
    fresh = new_session(None, now=services.clock())
    response = _page(request, "signin.html", {"signin_csrf": fresh.csrf})
    _set_cookie(request, response, fresh)
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    """The key is checked exactly as the API checks a bearer key; the session then holds the
    tenant it belongs to (a new CSRF token with it), never the key."""
    services: Services = request.app.state.services
    form = await _form(request)
    pending = _session(request)
    if not csrf_matches(pending, form.get("csrf")):
        return forbidden_page(request, None)
    key = form.get("api_key", "").strip()
    try:
        tenant = await services.auth.tenant_for(f"Bearer {key}")
    except RelayError:
        assert pending is not None
        response = _page(
            request,
            "signin.html",
            {"signin_csrf": pending.csrf, "error": "That API key is not valid."},
            status_code=401,
        )
        return response
    response = _see("/ui/")
    _set_cookie(request, response, new_session(tenant, now=services.clock()))
    return response


@router.post("/signout")
async def signout(request: Request, operator: OperatorDep) -> Response:
    form = await _form(request)
    if refused := _csrf_refused(request, operator, form):
        return refused
    response = _see("/ui/signin")
    response.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="strict")
    return response


# -- overview ---------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request, operator: OperatorDep) -> Response:
    store, now = operator.services.store, operator.now()
    seen = await store.overview(
        operator.tenant,
        since=now - views.WINDOW_SECONDS,
        slot_seconds=views.SLOT_SECONDS,
        now=now,
    )
    destinations = await _destinations_with_health(operator)
    context = {
        "title": "Overview",
        "counts": seen.counts,
        "total": sum(seen.counts.values()),
        "oldest_pending_age": now - seen.oldest_pending_at if seen.oldest_pending_at else None,
        "chart": views.chart(views.activity(seen.attempts)),
        "replicas": seen.replicas,
        "paused_for": seen.paused_until - now if seen.paused_until > now else None,
        "dead": [d for d in destinations if d["dead"]],
        "destinations": len(destinations),
    }
    return _page(request, "overview.html", context, operator=operator)


# -- results ----------------------------------------------------------------------------------


def _next_link(path: str, listing: views.Listing, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = {k: v for k, v in listing.form.items() if v}
    query["cursor"] = cursor
    return f"{path}?{urlencode(query)}"


async def _listing_page(
    request: Request,
    operator: Operator,
    *,
    title: str,
    path: str,
    template: str,
    statuses: type[Status] | type[RunStatus],
    read: Callable[[views.Listing, str | None], Awaitable[Page | RunPage]],
) -> Response:
    """A page of results or runs, newest first, under the filters of the query string."""
    listing = views.read_listing(request.query_params, statuses)
    errors = list(listing.errors)
    items: tuple[ResultRecord, ...] | tuple[RunRecord, ...] = ()
    next_cursor = None
    try:
        page = await read(listing, listing.cursor)
        items, next_cursor = page.items, page.next_cursor
    except RelayError as exc:  # a cursor that does not decode
        errors.append(exc.message)
    context = {
        "title": title,
        "listing": listing,
        "statuses": [s.value for s in statuses],
        "items": items,
        "errors": errors,
        "next": _next_link(path, listing, next_cursor),
        "first_page": listing.cursor is not None,
    }
    return _page(request, template, context, operator=operator, status_code=422 if errors else 200)


@router.get("/results")
async def results_page(request: Request, operator: OperatorDep) -> Response:
    async def read(listing: views.Listing, cursor: str | None) -> Page:
        filters = ResultFilter(
            status=Status(listing.status) if listing.status else None,
            text=listing.text,
            requester_id=listing.requester_id,
            since=listing.since,
            until=listing.until,
        )
        return await operator.services.store.list_results(
            operator.tenant, filters, limit=PAGE_SIZE, cursor=cursor
        )

    return await _listing_page(
        request,
        operator,
        title="Results",
        path="/ui/results",
        template="results.html",
        statuses=Status,
        read=read,
    )


SHOWN_JSON_CHARS = 200_000  # more is cut on the page; the download has it all


def _messages(record: ResultRecord, max_parts: int) -> list[dict[str, Any]]:
    """The messages as Discord would show them: the service's own rendering of the result."""
    shown = []
    for number, part in enumerate(render_record(record, max_parts=max_parts), start=1):
        payload = part.payload
        shown.append(
            {
                "number": number,
                "content": payload.get("content"),
                "embeds": payload.get("embeds", []),
                "files": [
                    {"name": f.filename, "size": len(f.content), "type": f.content_type}
                    for f in part.files
                ],
            }
        )
    return shown


def _results_text(record: ResultRecord) -> str:
    return json.dumps(record.results, indent=2, ensure_ascii=False)


def _shown(record: ResultRecord, max_parts: int) -> dict[str, Any]:
    """What the result page shows of the result itself: its messages and its JSON (cut at
    :data:`SHOWN_JSON_CHARS`). Rendering a large result takes a while, so it runs in a thread."""
    text = _results_text(record)
    return {
        "messages": _messages(record, max_parts),
        "results_json": text[:SHOWN_JSON_CHARS],
        "results_chars": len(text),
        "results_cut": len(text) > SHOWN_JSON_CHARS,
    }


async def _result_context(operator: Operator, record: ResultRecord) -> dict[str, Any]:
    store = operator.services.store
    attempts = await store.list_attempts(operator.tenant, record.workflow_id) or []
    max_parts = operator.services.settings.max_parts
    destinations = await store.list_destinations(operator.tenant)
    return {
        "title": f"Result {record.workflow_id}",
        "record": record,
        **await anyio.to_thread.run_sync(_shown, record, max_parts),
        "attempts": attempts,
        "failed_outcomes": {o.value for o in views.FAILED_OUTCOMES},
        "names": [d.name for d in destinations if d.name],
        "delivered": {m.part: m for m in record.messages},
        "now": operator.now(),
    }


_DONE = {
    "redelivered": "Queued for delivery again.",
    "added": "Destination saved: Discord accepted the webhook.",
    "removed": "Destination removed.",
    "revived": "Discord accepts the webhook again: it is alive.",
    "deleted": "Result deleted.",
}


@router.get("/results/{workflow_id}")
async def result_page(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    record = await operator.services.store.get_result(operator.tenant, workflow_id)
    if record is None:
        return not_found_page(request, operator, f"No result with workflow id {workflow_id!r}.")
    context = await _result_context(operator, record)
    context["done"] = _DONE.get(request.query_params.get("done", ""))
    return _page(request, "result.html", context, operator=operator)


@router.get("/results/{workflow_id}/results.json")
async def result_json(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    record = await operator.services.store.get_result(operator.tenant, workflow_id)
    if record is None:
        return not_found_page(request, operator, f"No result with workflow id {workflow_id!r}.")
    body = (await anyio.to_thread.run_sync(_results_text, record)).encode()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workflow_id)[:100]
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="results-{safe}.json"'},
    )


def _wanted_destination(form: Mapping[str, str]) -> DestinationIn | None:
    """The redeliver form's target: a webhook URL typed in wins over a registered name; neither
    means the result's own destination."""
    url = form.get("webhook_url", "").strip()
    name = form.get("name", "").strip()
    thread = form.get("thread_id", "").strip() or None
    if not url and not name:
        return None
    fields: dict[str, Any] = {"webhook_url": url} if url else {"name": name}
    if thread:
        fields["thread_id"] = thread
    return DestinationIn.model_validate(fields)


@router.post("/results/{workflow_id}/redeliver")
async def redeliver_form(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    form = await _form(request)
    if refused := _csrf_refused(request, operator, form):
        return refused
    store = operator.services.store
    existing = await store.get_result(operator.tenant, workflow_id)
    if existing is None:
        return not_found_page(request, operator, f"No result with workflow id {workflow_id!r}.")
    errors: list[str] = []
    try:
        record = await redeliver(
            store,
            operator.services.sender,
            operator.tenant,
            workflow_id,
            _wanted_destination(form),
            now=operator.now(),
        )
    except ValidationError as exc:
        errors = _form_errors(exc)
    except RelayError as exc:
        errors = [exc.message]
    else:
        if record is None:
            return not_found_page(request, operator, f"No result with workflow id {workflow_id!r}.")
        operator.services.notify()
        return _see(f"/ui/results/{workflow_id}", done="redelivered")
    context = await _result_context(operator, existing)
    context["redeliver_errors"] = errors
    return _page(request, "result.html", context, operator=operator, status_code=422)


@router.get("/results/{workflow_id}/delete")
async def delete_confirm(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    record = await operator.services.store.get_result(operator.tenant, workflow_id)
    if record is None:
        return not_found_page(request, operator, f"No result with workflow id {workflow_id!r}.")
    context = {"title": f"Delete {workflow_id}?", "record": record}
    return _page(request, "delete.html", context, operator=operator)


@router.post("/results/{workflow_id}/delete")
async def delete_form(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    form = await _form(request)
    if refused := _csrf_refused(request, operator, form):
        return refused
    if not await operator.services.store.delete_result(operator.tenant, workflow_id):
        return not_found_page(request, operator, f"No result with workflow id {workflow_id!r}.")
    operator.services.metrics.results_deleted.inc()
    return _see("/ui/results", done="deleted")


# -- runs -------------------------------------------------------------------------------------


@router.get("/runs")
async def runs_page(request: Request, operator: OperatorDep) -> Response:
    async def read(listing: views.Listing, cursor: str | None) -> RunPage:
        filters = RunFilter(
            status=RunStatus(listing.status) if listing.status else None,
            text=listing.text,
            requester_id=listing.requester_id,
            since=listing.since,
            until=listing.until,
        )
        return await operator.services.store.list_runs(
            operator.tenant, filters, limit=PAGE_SIZE, cursor=cursor
        )

    return await _listing_page(
        request,
        operator,
        title="Runs",
        path="/ui/runs",
        template="runs.html",
        statuses=RunStatus,
        read=read,
    )


@router.get("/runs/{workflow_id}")
async def run_page(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    run = await operator.services.store.get_run(operator.tenant, workflow_id)
    if run is None:
        return not_found_page(request, operator, f"No run with workflow id {workflow_id!r}.")
    context = {"title": f"Run {workflow_id}", "run": run, "now": operator.now()}
    return _page(request, "run.html", context, operator=operator)


@router.get("/runs/{workflow_id}/progress")
async def run_progress(request: Request, workflow_id: str, operator: OperatorDep) -> Response:
    """The run's progress as an HTML fragment, for the run page's script to poll."""
    run = await operator.services.store.get_run(operator.tenant, workflow_id)
    if run is None:
        return not_found_page(request, operator, f"No run with workflow id {workflow_id!r}.")
    return _page(
        request, "run_progress.html", {"run": run, "now": operator.now()}, operator=operator
    )


# -- destinations -----------------------------------------------------------------------------


async def _destinations_with_health(operator: Operator) -> list[dict[str, Any]]:
    store = operator.services.store
    shown = []
    for destination in await store.list_destinations(operator.tenant):
        reason = await store.dead_reason(destination.webhook_id, destination.webhook_token)
        shown.append(
            {
                "name": destination.name,
                "webhook_id": destination.webhook_id,
                "thread_id": destination.thread_id,
                "dead": reason,
            }
        )
    return shown


async def _destinations_view(
    request: Request,
    operator: Operator,
    *,
    errors: list[str] | None = None,
    form: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "title": "Destinations",
        "destinations": await _destinations_with_health(operator),
        "errors": errors or [],
        "form": {"name": "", "thread_id": "", **(form or {}), "webhook_url": ""},
        # An HTML pattern is compiled with the v flag: a literal "-" in a class is escaped.
        "name_pattern": DESTINATION_NAME_PATTERN.strip("^$").replace("-]", "\\-]"),
        "done": _DONE.get(request.query_params.get("done", "")),
    }
    return _page(request, "destinations.html", context, operator=operator, status_code=status_code)


@router.get("/destinations")
async def destinations_page(request: Request, operator: OperatorDep) -> Response:
    return await _destinations_view(request, operator)


@router.post("/destinations")
async def add_destination(request: Request, operator: OperatorDep) -> Response:
    """As ``PUT /v1/destinations/{name}``: Discord is asked about the webhook before it is kept."""
    form = await _form(request)
    if refused := _csrf_refused(request, operator, form):
        return refused
    name = form.get("name", "").strip()
    try:
        DestinationIn.model_validate({"name": name})
        wanted = DestinationCreate.model_validate(
            {"webhook_url": form.get("webhook_url", "").strip()}
            | ({"thread_id": t} if (t := form.get("thread_id", "").strip()) else {})
        )
        await register_destination(
            operator.services.store,
            operator.services.sender,
            operator.tenant,
            name,
            wanted,
            now=operator.now(),
        )
    except ValidationError as exc:
        errors = _form_errors(exc)
    except RelayError as exc:
        errors = [exc.message]
    else:
        return _see("/ui/destinations", done="added")
    kept = {"name": name, "thread_id": form.get("thread_id", "")}
    return await _destinations_view(request, operator, errors=errors, form=kept, status_code=422)


async def _named(operator: Operator, name: str) -> Destination | None:
    return await operator.services.store.get_destination(operator.tenant, name)


@router.post("/destinations/{name}/delete")
async def remove_destination(request: Request, name: str, operator: OperatorDep) -> Response:
    form = await _form(request)
    if refused := _csrf_refused(request, operator, form):
        return refused
    if not await operator.services.store.delete_destination(operator.tenant, name):
        return not_found_page(request, operator, f"No destination named {name!r}.")
    return _see("/ui/destinations", done="removed")


@router.post("/destinations/{name}/revive")
async def revive_destination(request: Request, name: str, operator: OperatorDep) -> Response:
    """What registering the same webhook again does: Discord is asked, and a webhook it takes
    again is alive again (for this token)."""
    form = await _form(request)
    if refused := _csrf_refused(request, operator, form):
        return refused
    destination = await _named(operator, name)
    if destination is None:
        return not_found_page(request, operator, f"No destination named {name!r}.")
    try:
        await confirm_webhook(
            operator.services.store,
            operator.services.sender,
            destination.webhook_id,
            destination.webhook_token,
            now=operator.services.clock(),
        )
    except RelayError as exc:
        return await _destinations_view(request, operator, errors=[exc.message], status_code=422)
    return _see("/ui/destinations", done="revived")
