"""The one place that turns errors into HTTP answers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core.core_schema import ErrorType
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.api.schemas import ErrorBody, ErrorDetail, ErrorResponse
from service.errors import RelayError

log = logging.getLogger(__name__)

# Pydantic's own error types; any other type was raised by one of our validators and is already
# the code to answer with, so no list of our codes has to be kept here.
_PYDANTIC_TYPES = frozenset(get_args(ErrorType))
# Where pydantic's generic error types land on a field we know, say which rule it was.
_FIELD_CODES = {
    "workflow_id": "invalid_workflow_id",
    "results": "invalid_results",
    "message": "invalid_message",
    "interaction": "invalid_interaction",
    "destination": "invalid_destination",
    "requester": "invalid_requester",
    "token": "invalid_bot_token",  # PUT /v1/bot
    "url": "invalid_url",
    "depth": "invalid_depth",
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}


def documented(description: str) -> dict[str, Any]:
    """An error answer as the OpenAPI description shows it: the error body, and when."""
    return {"model": ErrorResponse, "description": description}


_STORE_DOWN = "`store_unavailable`: the database cannot be reached; nothing was changed"
# Every /v1 route: the key is checked (against stored keys too) before anything else.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: documented("Missing or invalid API key"),
    503: documented(_STORE_DOWN),
}


def body_refusals(unavailable: str = "") -> dict[int | str, dict[str, Any]]:
    """What the body guard (and the store) may answer to a route that takes a body;
    ``unavailable`` names the route's own other reason for a 503."""
    return {
        408: documented(
            "`body_timeout`: the body did not arrive within RELAY_BODY_TIMEOUT_SECONDS"
        ),
        413: documented("`payload_too_large`: the body is over RELAY_MAX_BODY_BYTES"),
        503: documented(
            "`overloaded`: too many request bodies in flight, retry after `Retry-After` "
            f"seconds; {_STORE_DOWN}{unavailable}"
        ),
    }


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def validation_code(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    if kind and kind not in _PYDANTIC_TYPES:
        return kind
    if kind == "json_invalid":
        return "malformed_json"
    if kind == "extra_forbidden":
        return "unknown_field"
    if loc and loc[0] == "query":
        return "invalid_query"
    if not loc:
        return "missing_body" if kind == "missing" else "invalid_body"
    return _FIELD_CODES.get(loc[0], "invalid_request")


def _field(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "body"  # its loc holds the character position, not a field
    context = error.get("ctx") or {}
    if isinstance(context.get("field"), str):  # a place inside the value, set by the validator
        return str(context["field"])
    loc = error.get("loc", ())
    return ".".join(str(part) for part in loc if part not in ("body", "query")) or "body"


def validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    return [
        ErrorDetail(field=_field(error), code=validation_code(error), message=str(error.get("msg")))
        for error in errors
    ]


def _note(request: Request, code: str) -> None:
    """Remember the code for the access log and count it."""
    request.state.error_code = code
    request.app.state.services.metrics.request_errors.labels(code).inc()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RelayError)
    async def relay_error(request: Request, exc: RelayError) -> JSONResponse:
        _note(request, exc.code)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return error_response(exc.status_code, exc.code, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc.errors())
        first = details[0] if details else ErrorDetail(field="body", code="invalid", message="")
        _note(request, first.code)
        message = (
            "the body is not valid JSON"
            if first.code == "malformed_json"
            else f"{first.field}: {first.message}"
        )
        return error_response(422, first.code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        _note(request, code)
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, exc: ClientDisconnect) -> Response:
        # The client went away mid-body, or the body guard refused it and answers itself: no
        # one reads this answer, and it is no server error.
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception text may hold anything; the client gets a fixed message, the log the type.
        log.error("unhandled error", extra={"error_type": type(exc).__name__}, exc_info=exc)
        _note(request, "internal_error")
        return error_response(500, "internal_error", "the service failed to handle the request")
