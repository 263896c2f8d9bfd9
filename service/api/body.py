"""Reading a JSON request body by hand, after the API key was checked: parsed and validated off
the event loop when it is large, with the same 422 codes FastAPI's own body parsing gives.

FastAPI reads and parses a declared body parameter on the event loop, before any dependency
runs. Bodies here may be 25 MiB, so the routes that take one read it themselves
(:func:`parsed_body`, :func:`optional_body`, or ``POST /v1/results`` with :func:`validate_json`);
each documents its body with :func:`json_body`, and the app adds the schemas with
:func:`document_bodies`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from email.message import Message
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from pydantic_core import from_json

from service.api.faithful import TOO_DEEP, TOO_DEEP_MESSAGE

# Below this, parsing, validating, hashing and serialising take a fraction of a millisecond:
# less than a hop to a worker thread and back costs the event loop in hand-offs.
LARGE_BODY_BYTES = 64 * 1024

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_documented: list[type[BaseModel]] = []


async def off_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    """Run ``work`` in a worker thread when it handles ``size`` bytes or more."""
    if size < LARGE_BODY_BYTES:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args)


async def read_body(request: Request) -> bytearray:
    """The whole body in one buffer, sized up front when the length is declared (one copy of
    the bytes, never a list of chunks joined at the end)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        buffer = bytearray(int(declared))
        filled = 0
        async for chunk in request.stream():
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        del buffer[filled:]  # the server refuses more than declared; less means cut short
        return buffer
    grown = bytearray()
    async for chunk in request.stream():
        grown += chunk
    return grown


def _is_json(content_type: str | None) -> bool:
    # As FastAPI decides: no Content-Type, or application/json or application/*+json.
    if not content_type or content_type == "application/json":
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _parse(raw: bytearray) -> Any:
    try:
        # pydantic's parser is about three times faster than json's (and shares repeated short
        # strings). What it refuses, Python's json reads again: it takes NaN, Infinity and lone
        # surrogate escapes, so the value rules of the schemas (service.api.faithful) refuse
        # them with their own code and the place, whichever parser ran.
        return from_json(raw, allow_inf_nan=False)
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except RecursionError:
        # Nesting far past what the value rules allow: the same refusal, without the walk.
        raise RequestValidationError(
            [{"type": TOO_DEEP, "loc": ("body",), "msg": TOO_DEEP_MESSAGE, "input": None}]
        ) from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", getattr(exc, "pos", 0)),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": reason},
                }
            ]
        ) from None


def validate_json(model: type[M], raw: bytearray, content_type: str | None) -> M:
    """``model`` from a JSON body, or the ``RequestValidationError`` FastAPI would raise.

    Consumes ``raw``: it is emptied once parsed, so the bytes and the objects made from them
    are not both held while the rest of the request runs.
    """
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    # FastAPI validates a body sent as another media type as it is: not an object.
    data = _parse(raw) if _is_json(content_type) else bytes(raw)
    raw.clear()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` that documents ``model`` as the route's JSON body, described as FastAPI
    describes a body parameter (an optional one may also be ``null``)."""
    _documented.append(model)
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{model.__name__}"}
    if not required:
        schema = {"anyOf": [schema, {"type": "null"}], "title": "Body"}
    body: dict[str, Any] = {"content": {"application/json": {"schema": schema}}}
    return {"requestBody": {"required": True, **body} if required else body}


async def parsed_body(request: Request, model: type[M]) -> M:
    """The request's body as ``model``: read after the key was checked, validated off the loop
    when large."""
    raw = await read_body(request)
    content_type = request.headers.get("content-type")
    return await off_loop(len(raw), validate_json, model, raw, content_type)


async def optional_body(request: Request, model: type[M]) -> M | None:
    """As :func:`parsed_body`, but no body at all (or ``null``) is None."""
    raw = await read_body(request)
    if not raw or raw.strip() == b"null":
        return None
    content_type = request.headers.get("content-type")
    return await off_loop(len(raw), validate_json, model, raw, content_type)


def document_bodies(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the schemas of the bodies :func:`json_body` documented (FastAPI adds only those of
    the parameters it parses itself), in FastAPI's sorted order."""
    schemas: dict[str, Any] = openapi.setdefault("components", {}).setdefault("schemas", {})
    # Generated the way FastAPI generates its own (definitions, not one model's schema), so
    # the description reads the same as when FastAPI parsed the body.
    _, definitions = models_json_schema(
        [(model, "validation") for model in _documented],
        ref_template="#/components/schemas/{model}",
    )
    for name, definition in definitions.get("$defs", {}).items():
        schemas.setdefault(name, definition)
    openapi["components"]["schemas"] = dict(sorted(schemas.items()))
    return openapi
