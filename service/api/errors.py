"""The one place that turns errors into HTTP answers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core.core_schema import ErrorType
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.faithful import TOO_DEEP, TOO_DEEP_MESSAGE, unfaithful
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
    "url": "invalid_url",
    "depth": "invalid_depth",
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}


def documented(description: str) -> dict[str, Any]:
    """An error answer as the OpenAPI description shows it: the error body, and when."""
    return {"model": ErrorResponse, "description": description}


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: documented("Missing or invalid API key")}


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
        return _json_invalid(error).code
    if kind == "extra_forbidden":
        return "unknown_field"
    if loc and loc[0] == "query":
        return "invalid_query"
    if not loc:
        return "missing_body" if kind == "missing" else "invalid_body"
    return _FIELD_CODES.get(loc[0], "invalid_request")


def _json_invalid(error: Mapping[str, Any]) -> ErrorDetail:
    """A body the parser refused. When Python's own parser reads it, the value rules say what
    is wrong with it and where: a parser that refuses a lone surrogate or absurd nesting by
    itself (pydantic's does) then answers with the same code and field as one that does not."""
    raw = error.get("input")
    message = str(error.get("msg", "invalid"))
    if isinstance(raw, bytes | bytearray | str):
        try:
            found = unfaithful(json.loads(raw))
        except RecursionError:
            return ErrorDetail(field="body", code=TOO_DEEP, message=TOO_DEEP_MESSAGE)
        except ValueError:  # not JSON for Python either (UnicodeDecodeError included)
            found = None
        if found is not None:
            return ErrorDetail(field=found.field(), code=found.code, message=found.message)
    if "recursion limit" in message:
        return ErrorDetail(field="body", code=TOO_DEEP, message=TOO_DEEP_MESSAGE)
    return ErrorDetail(field="body", code="malformed_json", message=message)


def _field(error: Mapping[str, Any]) -> str:
    context = error.get("ctx") or {}
    if isinstance(context.get("field"), str):  # a place inside the value, set by the validator
        return str(context["field"])
    loc = error.get("loc", ())
    return ".".join(str(part) for part in loc if part not in ("body", "query")) or "body"


def validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    return [
        _json_invalid(error)
        if error.get("type") == "json_invalid"
        else ErrorDetail(
            field=_field(error),
            code=validation_code(error),
            message=str(error.get("msg", "invalid")),
        )
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
        if isinstance(exc.__cause__, RecursionError):
            # Python's json gave up on a body nested far past MAX_DEPTH: the value rule's answer.
            _note(request, TOO_DEEP)
            return error_response(422, TOO_DEEP, f"body: {TOO_DEEP_MESSAGE}")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        _note(request, code)
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception text may hold anything; the client gets a fixed message, the log the type.
        log.error("unhandled error", extra={"error_type": type(exc).__name__}, exc_info=exc)
        _note(request, "internal_error")
        return error_response(500, "internal_error", "the service failed to handle the request")
