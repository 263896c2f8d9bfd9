"""Discord's message limits, at the edge (accepted) and past it (refused with 50035)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedWebhook
from tests.emulator.support import body, error_at, error_codes_at, hook_path, multipart

MiB = 1024 * 1024


def embed(**fields: Any) -> dict[str, Any]:
    return {"title": "t", **fields}


def fields(n: int, name: str = "n", value: str = "v") -> list[dict[str, str]]:
    return [{"name": name, "value": value} for _ in range(n)]


AT_THE_LIMITS: list[tuple[str, dict[str, Any]]] = [
    ("content of exactly 2000", body(content="x" * 2000)),
    ("content of 2000 code points, not UTF-16 units", body(content="🙂" * 2000)),
    ("content of 2000 inside whitespace that is trimmed", body(content=f"  {'x' * 2000}\n ")),
    ("10 embeds", body(embeds=[embed() for _ in range(10)])),
    ("title of 256", body(embeds=[embed(title="t" * 256)])),
    ("description of 4096", body(embeds=[embed(title=None, description="d" * 4096)])),
    ("25 fields", body(embeds=[embed(fields=fields(25))])),
    (
        "field name 256 and value 1024",
        body(embeds=[embed(fields=fields(1, "n" * 256, "v" * 1024))]),
    ),
    ("footer of 2048", body(embeds=[embed(footer={"text": "f" * 2048})])),
    ("author name of 256", body(embeds=[embed(author={"name": "a" * 256})])),
    (
        "exactly 6000 over all embeds",
        body(
            embeds=[
                {"title": "t" * 256, "description": "d" * 4096},
                {"description": "d" * 1000, "footer": {"text": "f" * 600}},
                {"author": {"name": "a" * 8}, "fields": fields(1, "n" * 20, "v" * 20)},
            ]
        ),
    ),
    ("username of 80", body(content="x", username="u" * 80)),
    (
        "100 allowed user ids",
        body(
            content="x",
            allowed_mentions={"parse": [], "users": [str(10**17 + i) for i in range(100)]},
        ),
    ),
    ("suppress embeds and notifications flags", body(content="x", flags=4 | 4096)),
    ("only embeds, no content", body(embeds=[embed()])),
    ("a poll", body(poll={"question": {"text": "q?"}, "answers": [{"poll_media": {"text": "a"}}]})),
    ("null optional fields", body(content="x", embeds=None, username=None, tts=None)),
]


@pytest.mark.parametrize(("case", "payload"), AT_THE_LIMITS, ids=[c for c, _ in AT_THE_LIMITS])
async def test_payloads_at_the_limits_are_accepted(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    case: str,
    payload: dict[str, Any],
) -> None:
    response = await discord.post(hook_path(webhook), json=payload)
    assert response.status_code == 200, response.text
    assert len(emulator.messages(webhook.id)) == 1
    assert emulator.counters.payload_400s == 0


async def test_ten_files_and_ten_attachments_are_accepted(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    files = [(f"f{i}.txt", f"{i}".encode()) for i in range(10)]
    payload = body(attachments=[{"id": i, "filename": name} for i, (name, _) in enumerate(files)])
    response = await discord.post(hook_path(webhook), **multipart(payload, *files))
    assert response.status_code == 200, response.text
    assert [a.data for a in emulator.messages(webhook.id)[0].attachments] == [d for _, d in files]


async def test_file_of_exactly_10_mib_is_accepted(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    payload = body(attachments=[{"id": 0, "filename": "big.bin"}])
    response = await discord.post(
        hook_path(webhook), **multipart(payload, ("big.bin", b"\0" * (10 * MiB)))
    )
    assert response.status_code == 200
    assert emulator.messages(webhook.id)[0].attachments[0].size == 10 * MiB


async def test_content_is_stored_trimmed(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    await discord.post(hook_path(webhook), json=body(content="  padded \n"))
    assert emulator.messages(webhook.id)[0].content == "padded"


OVER_THE_LIMITS: list[tuple[str, dict[str, Any], tuple[str | int, ...], str]] = [
    ("content over 2000", body(content="x" * 2001), ("content",), "BASE_TYPE_MAX_LENGTH"),
    ("11 embeds", body(embeds=[embed() for _ in range(11)]), ("embeds",), "BASE_TYPE_MAX_LENGTH"),
    (
        "title over 256",
        body(embeds=[embed(title="t" * 257)]),
        ("embeds", 0, "title"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "description over 4096",
        body(embeds=[embed(description="d" * 4097)]),
        ("embeds", 0, "description"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "26 fields",
        body(embeds=[embed(fields=fields(26))]),
        ("embeds", 0, "fields"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "field name over 256",
        body(embeds=[embed(fields=fields(1, "n" * 257))]),
        ("embeds", 0, "fields", 0, "name"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "field value over 1024",
        body(embeds=[embed(fields=[*fields(3), {"name": "n", "value": "v" * 1025}])]),
        ("embeds", 0, "fields", 3, "value"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "empty field value",
        body(embeds=[embed(fields=fields(1, "n", "   "))]),
        ("embeds", 0, "fields", 0, "value"),
        "BASE_TYPE_REQUIRED",
    ),
    (
        "missing field name",
        body(embeds=[embed(fields=[{"value": "v"}])]),
        ("embeds", 0, "fields", 0, "name"),
        "BASE_TYPE_REQUIRED",
    ),
    (
        "footer over 2048",
        body(embeds=[embed(footer={"text": "f" * 2049})]),
        ("embeds", 0, "footer", "text"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "author name over 256",
        body(embeds=[embed(author={"name": "a" * 257})]),
        ("embeds", 0, "author", "name"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "6001 over all embeds",
        body(embeds=[{"description": "d" * 4096}, {"description": "d" * 1905}]),
        ("embeds",),
        "MAX_EMBED_SIZE_EXCEEDED",
    ),
    (
        "username over 80",
        body(content="x", username="u" * 81),
        ("username",),
        "BASE_TYPE_BAD_LENGTH",
    ),
    ("empty username", body(content="x", username=" "), ("username",), "BASE_TYPE_BAD_LENGTH"),
    (
        "username with discord",
        body(content="x", username="Discord relay"),
        ("username",),
        "USERNAME_INVALID_CONTAINS",
    ),
    (
        "11 attachments",
        body(content="x", attachments=[{"id": i} for i in range(11)]),
        ("attachments",),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "ephemeral flag on a channel webhook",
        body(content="x", flags=64),
        ("flags",),
        "MESSAGE_FLAGS_INVALID",
    ),
    (
        "parse users with user ids",
        body(content="x", allowed_mentions={"parse": ["users"], "users": ["123456789012345678"]}),
        ("allowed_mentions",),
        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
    ),
    (
        "101 allowed user ids",
        body(
            content="x",
            allowed_mentions={"parse": [], "users": [str(10**17 + i) for i in range(101)]},
        ),
        ("allowed_mentions", "users"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "content with components v2",
        body(content="x", flags=32768, components=[{"type": 10, "content": "hi"}]),
        ("content",),
        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
    ),
    ("content that is not a string", body(content=12), ("content",), "BASE_TYPE_STRING"),
    ("embeds that is not a list", body(embeds={"title": "t"}), ("embeds",), "LIST_TYPE_CONVERT"),
]


@pytest.mark.parametrize(
    ("case", "payload", "path", "code"), OVER_THE_LIMITS, ids=[c[0] for c in OVER_THE_LIMITS]
)
async def test_payloads_past_the_limits_are_refused_with_50035(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    case: str,
    payload: dict[str, Any],
    path: tuple[str | int, ...],
    code: str,
) -> None:
    response = await discord.post(hook_path(webhook), json=payload)
    assert response.status_code == 400
    assert response.json()["code"] == 50035
    assert response.json()["message"] == "Invalid Form Body"
    assert code in error_codes_at(response, *path)
    assert emulator.messages(webhook.id) == []
    assert emulator.counters.payload_400s == 1


async def test_content_over_2000_is_refused_with_50035(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook), json=body(content="x" * 2001))
    assert response.status_code == 400
    assert response.json() == {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {
            "content": {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
                ]
            }
        },
    }
    assert "X-RateLimit-Remaining" in response.headers


async def test_every_form_error_is_reported_at_once(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    payload = body(
        content="x" * 2001, embeds=[embed(fields=[*fields(3), {"name": "n", "value": "v" * 1025}])]
    )
    response = await discord.post(hook_path(webhook), json=payload)
    assert error_at(response, "content")[0]["message"] == "Must be 2000 or fewer in length."
    assert error_at(response, "embeds", 0, "fields", 3, "value") == [
        {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 1024 or fewer in length."}
    ]


@pytest.mark.parametrize(
    ("payload", "path", "code"),
    [
        (
            body(embeds=[embed(url="ftp://example.com/x")]),
            ("embeds", 0, "url"),
            "URL_TYPE_INVALID_SCHEME",
        ),
        (body(embeds=[embed(color="red")]), ("embeds", 0, "color"), "NUMBER_TYPE_COERCE"),
        (body(embeds=[embed(color=16777216)]), ("embeds", 0, "color"), "NUMBER_TYPE_MAX"),
        (
            body(embeds=[embed(timestamp="yesterday")]),
            ("embeds", 0, "timestamp"),
            "DATE_TYPE_PARSE",
        ),
        (body(content="x", avatar_url="not a url"), ("avatar_url",), "URL_TYPE_INVALID_URL"),
        (body(content="x", tts="yes"), ("tts",), "BASE_TYPE_BOOLEAN"),
        (
            body(content="x", allowed_mentions={"parse": ["all"]}),
            ("allowed_mentions", "parse", 0),
            "BASE_TYPE_CHOICES",
        ),
        (
            body(content="x", attachments=[{"filename": "a"}]),
            ("attachments", 0, "id"),
            "BASE_TYPE_REQUIRED",
        ),
        (body(content="x", applied_tags=["abc"]), ("applied_tags", 0), "NUMBER_TYPE_COERCE"),
        (
            body(poll={"question": {"text": "q"}, "answers": []}),
            ("poll", "answers"),
            "BASE_TYPE_MIN_LENGTH",
        ),
    ],
)
async def test_openapi_schema_violations_are_refused_with_50035(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    payload: dict[str, Any],
    path: tuple[str | int, ...],
    code: str,
) -> None:
    response = await discord.post(hook_path(webhook), json=payload)
    assert response.status_code == 400
    assert code in error_codes_at(response, *path), response.json()
    assert emulator.counters.payload_400s == 1
