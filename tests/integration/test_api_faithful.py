"""JSON that cannot be stored and given back exactly is a 422 naming the rule and the place,
on SQLite and PostgreSQL alike, and nothing of it is stored."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from service.api.body import validate_json
from service.api.errors import validation_details
from service.api.schemas import ResultCreate
from service.app import create_app
from service.config import load_settings
from service.testing import DiscordEmulator
from tests.conftest import Clock
from tests.postgres import fresh_postgres_database
from tests.support import ACME, API_KEYS, SECRET_KEY, submission

JSON_HEADERS = {**ACME, "Content-Type": "application/json"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process on each backend."""
    if request.param == "sqlite":
        async with _client(f"sqlite:///{tmp_path}/relay.db", clock, emulator) as http:
            yield http
        return
    async with fresh_postgres_database() as url, _client(url, clock, emulator) as http:
        yield http


@contextlib.asynccontextmanager
async def _client(
    url: str, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(database_url=url, api_keys=API_KEYS, secret_key=SECRET_KEY)
    app = create_app(
        settings,
        clock=clock,
        background=False,
        discord_transport=httpx.ASGITransport(app=emulator.app),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay") as http,
    ):
        yield http


def raw_body(results_json: str, **fields: str) -> bytes:
    """A submission whose ``results`` (and other fields) are spliced in as raw JSON text, so
    literals ``json.dumps`` would never write reach the service exactly as a client sent them."""
    text = json.dumps(submission(results={"placeholder": 0}))
    text = text.replace('{"placeholder": 0}', results_json)
    for name, value in fields.items():
        text = text[:-1] + f', "{name}": {value}' + "}"
    return text.encode()


UNFAITHFUL: list[tuple[bytes, str, str]] = [
    (raw_body('{"scores": [1, 2, NaN]}'), "non_finite_number", "results.scores.2"),
    (raw_body('{"score": Infinity}'), "non_finite_number", "results.score"),
    (raw_body('{"score": -Infinity}'), "non_finite_number", "results.score"),
    (raw_body('{"note": "a\\ud800b"}'), "unpaired_surrogate", "results.note"),
    (raw_body('{"\\udc00key": 1}'), "unpaired_surrogate", "results.\\udc00key"),
    # the body is level 1 and results level 2: 62 more levels are allowed, not 63
    (raw_body("[" * 63 + "]" * 63), "invalid_results", "results"),
    (raw_body('{"a": ' + "[" * 63 + "]" * 63 + "}"), "too_deep", "results.a" + ".0" * 62),
    (
        raw_body("{}", message='{"content": "hi \\udbff"}'),
        "unpaired_surrogate",
        "message.content",
    ),
    (
        raw_body("{}", message='{"embeds": [{"title": "t", "fields": [{"value": NaN}]}]}'),
        "non_finite_number",
        "message.embeds.0.fields.0.value",
    ),
    (raw_body("{}", depth='"deep\\ud800"'), "unpaired_surrogate", "depth"),
]


@pytest.mark.parametrize(("body", "code", "field"), UNFAITHFUL)
async def test_unfaithful_json_is_refused_with_the_rule_and_the_place(
    any_backend: httpx.AsyncClient, body: bytes, code: str, field: str
) -> None:
    # given a body with one value no store can give back exactly
    # when it is posted as raw bytes
    response = await any_backend.post("/v1/results", content=body, headers=JSON_HEADERS)
    # then the answer is a 422 naming the rule and where, and nothing is stored
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"][0]["field"]) == (code, field)
    listing = await any_backend.get("/v1/results", headers=ACME)
    assert listing.json()["items"] == []


async def test_a_body_nested_past_what_the_parser_can_read_is_too_deep(
    any_backend: httpx.AsyncClient,
) -> None:
    # given nesting far past the parser's own recursion limit
    body = raw_body('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}")
    # when it is posted, then it is the same refusal as any value too deep, not a 400 or 500
    response = await any_backend.post("/v1/results", content=body, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "too_deep"


async def test_the_deepest_allowed_value_is_stored_and_given_back_exactly(
    any_backend: httpx.AsyncClient,
) -> None:
    # given results nested exactly as deep as allowed (the body itself is level 1)
    results = '{"a": ' + "[" * 62 + "1.5" + "]" * 62 + ', "b": "é😀", "c": 1e308}'
    # when posted
    response = await any_backend.post(
        "/v1/results", content=raw_body(results), headers=JSON_HEADERS
    )
    # then it is accepted and read back unchanged
    assert response.status_code == 202, response.text
    stored = await any_backend.get("/v1/results/wf_1", headers=ACME)
    assert stored.json()["results"] == json.loads(results)


@pytest.mark.parametrize(("body", "code", "field"), UNFAITHFUL)
@pytest.mark.parametrize("parser", ["python json", "the service's body reader"])
def test_either_parser_gives_the_same_refusal(
    body: bytes, code: str, field: str, parser: str
) -> None:
    # given a body with one unfaithful value, read by Python's json or by the service's body
    # reader (pydantic's parser first, which refuses some of them before any validator runs)
    # when it is validated, then the refusal names the same rule and the same place
    with pytest.raises((ValidationError, RequestValidationError)) as refused:
        if parser == "python json":
            ResultCreate.model_validate(json.loads(body))
        else:
            validate_json(ResultCreate, bytearray(body), "application/json")
    first = validation_details(refused.value.errors())[0]
    assert (first.code, first.field) == (code, field)
