"""Finding, compiling and applying Discord's OpenAPI description."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from service.testing import DiscordEmulator, schema
from tests.emulator.support import body, error_codes_at, hook_path


async def test_without_a_spec_the_cross_field_rules_still_apply(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given no spec anywhere
    monkeypatch.delenv(schema.SPEC_ENV, raising=False)
    monkeypatch.setattr(schema, "default_spec_path", lambda: tmp_path / "missing.json")
    monkeypatch.setattr(schema, "_warned_missing", False)
    emulator = DiscordEmulator(spec_path=tmp_path / "missing.json")
    webhook = emulator.create_webhook()
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://discord.com") as http:
        with caplog.at_level(logging.WARNING, logger="service.testing.schema"):
            # when a schema-only fault and a cross-field fault are sent
            lax = await http.post(
                hook_path(webhook), json=body(embeds=[{"title": "t", "color": "red"}])
            )
            strict = await http.post(hook_path(webhook), json=body(content="x" * 2001))
    # then only the cross-field rule refuses, and the missing spec was logged once
    assert lax.status_code == 200
    assert strict.status_code == 400
    assert error_codes_at(strict, "content") == ["BASE_TYPE_MAX_LENGTH"]
    assert [r.message for r in caplog.records].count(
        "discord openapi spec not found: schema validation is off"
    ) == 1


def test_spec_is_compiled_once_per_process() -> None:
    first = DiscordEmulator().load_schema()
    second = DiscordEmulator(spec_path=schema.default_spec_path()).load_schema()
    assert first is not None
    assert first is second


def test_spec_is_found_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    copy = tmp_path / "openapi.json"
    copy.write_bytes(schema.default_spec_path().read_bytes())
    monkeypatch.setenv(schema.SPEC_ENV, str(copy))
    assert schema.resolve_spec_path(None) == copy.resolve()
    assert schema.resolve_spec_path(schema.default_spec_path()) == schema.default_spec_path()


def test_edits_are_checked_against_the_update_schema_of_the_patch_operation() -> None:
    compiled = DiscordEmulator().load_schema()
    assert compiled is not None
    # username belongs to Execute Webhook only; the PATCH operation's schema has no such field
    assert compiled.errors({"username": "u" * 81}, "edit") == []
    assert compiled.errors({"username": "u" * 81}, "execute") == [
        (("username",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length.")
    ]
    assert compiled.errors({"content": "x" * 2001}, "edit") == [
        (("content",), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    ]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"attachments": [{"id": 0}]}, []),
        ({"attachments": [{"id": "0"}]}, []),
        ({"attachments": [{"id": -1}]}, [(("attachments", 0, "id"), "NUMBER_TYPE_COERCE")]),
        ({"attachments": [{"id": "x"}]}, [(("attachments", 0, "id"), "NUMBER_TYPE_COERCE")]),
        ({"embeds": [{"image": {"url": "attachment://r.png"}}]}, []),
        ({"embeds": [{"url": "https://"}]}, [(("embeds", 0, "url"), "URL_TYPE_INVALID_URL")]),
    ],
)
def test_snowflakes_may_be_integers_and_embeds_may_point_at_attachments(
    payload: dict[str, object], expected: list[tuple[tuple[str | int, ...], str]]
) -> None:
    compiled = DiscordEmulator().load_schema()
    assert compiled is not None
    assert [(path, code) for path, code, _ in compiled.errors(payload, "execute")] == expected


def test_the_shipped_subset_holds_every_schema_it_references() -> None:
    # given the subset shipped in the package, cut again by the script that made it
    from service.testing.spec_subset import subset

    shipped = json.loads(schema.PACKAGED_SPEC.read_text(encoding="utf-8"))
    # then nothing it references is missing, and cutting it again changes nothing
    assert subset(shipped) == shipped
    assert (schema.PACKAGED_SPEC.parent / "LICENSE-openapi.txt").is_file()
