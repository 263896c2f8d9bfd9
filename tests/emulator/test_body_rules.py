"""How Discord reads a body and refuses one it cannot use: 50006, 50109, 30015, 413, forums."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedWebhook
from tests.emulator.support import body, error_codes_at, hook_path, multipart

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "payload",
    [{}, body(), body(content=""), body(content="   \n"), body(embeds=[]), body(content=None)],
)
async def test_empty_message_is_refused_with_50006(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    payload: dict[str, Any],
) -> None:
    response = await discord.post(hook_path(webhook), json=payload)
    assert response.status_code == 400
    assert response.json() == {"message": "Cannot send an empty message", "code": 50006}
    assert emulator.counters.payload_400s == 1


async def test_body_with_a_content_type_discord_ignores_reads_as_empty(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        hook_path(webhook), content=b'{"content": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == 50006


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"content": NaN}', b"\xff\xfe"])
async def test_invalid_json_is_refused_with_50109(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, raw: bytes
) -> None:
    response = await discord.post(
        hook_path(webhook), content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"message": "The request body contains invalid JSON.", "code": 50109}
    assert emulator.counters.payload_400s == 1


async def test_invalid_payload_json_part_is_refused_with_50109(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        hook_path(webhook),
        data={"payload_json": "{"},
        files=[("files[0]", ("a.txt", b"x", "text/plain"))],
    )
    assert response.json()["code"] == 50109


async def test_body_that_is_not_an_object_is_refused_with_50035(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook), json=["content"])
    assert response.status_code == 400
    assert response.json()["errors"]["_errors"][0]["code"] == "MODEL_TYPE_CONVERT"


async def test_eleven_files_are_refused_with_30015(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    files = [(f"f{i}.txt", b"x") for i in range(11)]
    response = await discord.post(hook_path(webhook), **multipart(body(content="x"), *files))
    assert response.status_code == 400
    assert response.json()["code"] == 30015
    assert emulator.messages(webhook.id) == []


async def test_file_over_10_mib_is_refused_with_413_40005(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    payload = body(attachments=[{"id": 0, "filename": "big.bin"}])
    response = await discord.post(
        hook_path(webhook), **multipart(payload, ("big.bin", b"\0" * (10 * MiB + 1)))
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request entity too large", "code": 40005}
    assert emulator.counters.payload_413s == 1
    assert emulator.messages(webhook.id) == []


async def test_attachment_without_its_file_is_refused_with_50035(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    payload = body(attachments=[{"id": 0, "filename": "a"}, {"id": 1, "filename": "b"}])
    response = await discord.post(hook_path(webhook), **multipart(payload, ("a", b"a")))
    assert response.status_code == 400
    assert error_codes_at(response, "attachments", 1, "id") == ["ATTACHMENT_NOT_FOUND"]


async def test_file_missing_from_attachments_is_refused_with_50035(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    payload = body(attachments=[{"id": 0, "filename": "a"}])
    response = await discord.post(
        hook_path(webhook), **multipart(payload, ("a", b"a"), ("b", b"b"))
    )
    assert response.status_code == 400
    assert error_codes_at(response, "files[1]") == ["ATTACHMENT_NOT_LISTED"]


async def test_file_part_without_a_filename_is_refused_with_50035(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        hook_path(webhook),
        files=[("payload_json", (None, b'{"content": "x"}')), ("files[0]", (None, b"no name"))],
    )
    assert response.status_code == 400
    assert error_codes_at(response, "files[0]") == ["BASE_TYPE_REQUIRED"]


async def test_unknown_form_part_is_refused_with_50035(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        hook_path(webhook), files=[("file", ("a.txt", b"x", "text/plain"))]
    )
    assert response.status_code == 400
    assert "file" in response.json()["errors"]


async def test_forum_webhook_without_thread_is_refused_with_220001(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    forum = emulator.create_webhook(forum=True)
    response = await discord.post(hook_path(forum), json=body(content="x"))
    assert response.status_code == 400
    assert response.json()["code"] == 220001
    assert emulator.counters.payload_400s == 1


async def test_forum_webhook_with_thread_id_and_thread_name_is_refused_with_220002(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    forum = emulator.create_webhook(forum=True)
    thread_id = emulator.create_thread(forum.id)
    response = await discord.post(
        hook_path(forum, query=f"wait=true&thread_id={thread_id}"),
        json=body(content="x", thread_name="results"),
    )
    assert response.status_code == 400
    assert response.json()["code"] == 220002


async def test_thread_name_outside_a_forum_is_refused_with_220003(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook), json=body(content="x", thread_name="t"))
    assert response.status_code == 400
    assert response.json()["code"] == 220003


async def test_forum_thread_name_creates_a_thread_named_after_its_first_message(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    forum = emulator.create_webhook(forum=True)
    response = await discord.post(hook_path(forum), json=body(content="x", thread_name="run 42"))
    assert response.status_code == 200
    message = response.json()
    assert message["channel_id"] == message["id"]
    # the new thread takes further posts through thread_id
    again = await discord.post(
        hook_path(forum, query=f"wait=true&thread_id={message['id']}"), json=body(content="y")
    )
    assert again.status_code == 200
    assert [m.content for m in emulator.messages(forum.id, message["id"])] == ["x", "y"]


@pytest.mark.parametrize(
    ("mentions", "bad"),
    [
        (None, 1),
        ({"parse": []}, 0),
        ({"parse": [], "users": ["123456789012345678"]}, 0),
        ({"parse": ["users"]}, 1),
        ({"users": []}, 1),
    ],
)
async def test_allowed_mentions_without_empty_parse_is_counted(
    discord: httpx.AsyncClient,
    emulator: DiscordEmulator,
    webhook: EmulatedWebhook,
    mentions: dict[str, Any] | None,
    bad: int,
) -> None:
    payload: dict[str, Any] = {"content": "@everyone done"}
    if mentions is not None:
        payload["allowed_mentions"] = mentions
    response = await discord.post(hook_path(webhook), json=payload)
    assert response.status_code == 200
    assert emulator.counters.bad_allowed_mentions == bad
