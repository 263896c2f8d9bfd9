"""Edit and delete a webhook message: applied to what Discord holds, and refused like Discord."""

from __future__ import annotations

import httpx

from service.testing import DiscordEmulator, EmulatedWebhook
from tests.emulator.support import body, error_codes_at, hook_path, message_path, multipart


async def post(http: httpx.AsyncClient, webhook: EmulatedWebhook, query: str = "wait=true") -> str:
    response = await http.post(hook_path(webhook, query=query), json=body(content="v1"))
    assert response.status_code == 200
    message_id: str = response.json()["id"]
    return message_id


async def test_patch_edits_the_stored_message_and_records_the_edit(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    edit = body(content="v2", embeds=[{"title": "done"}])
    response = await discord.patch(message_path(webhook, message_id), json=edit)
    assert response.status_code == 200
    assert response.json()["content"] == "v2"
    assert response.json()["edited_timestamp"] is not None
    [stored] = emulator.messages(webhook.id)
    assert (stored.content, stored.embeds, stored.edits) == ("v2", [{"title": "done"}], [edit])


async def test_patch_leaves_fields_it_does_not_name(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    await discord.patch(message_path(webhook, message_id), json=body(embeds=[{"title": "t"}]))
    stored = emulator.messages(webhook.id)[0]
    assert stored.content == "v1"
    assert stored.embeds == [{"title": "t"}]


async def test_patch_without_allowed_mentions_is_counted(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    response = await discord.patch(message_path(webhook, message_id), json={"content": "v2"})
    assert response.status_code == 200
    assert emulator.counters.bad_allowed_mentions == 1


async def test_patch_over_the_limits_is_refused_with_50035(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    response = await discord.patch(message_path(webhook, message_id), json=body(content="x" * 2001))
    assert response.status_code == 400
    assert error_codes_at(response, "content") == ["BASE_TYPE_MAX_LENGTH"]
    assert emulator.messages(webhook.id)[0].content == "v1"
    assert emulator.counters.payload_400s == 1


async def test_patch_that_empties_the_message_is_refused_with_50006(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    response = await discord.patch(message_path(webhook, message_id), json=body(content=""))
    assert response.status_code == 400
    assert response.json()["code"] == 50006


async def test_delete_then_patch_answers_unknown_message_10008(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    assert (await discord.delete(message_path(webhook, message_id))).status_code == 204
    response = await discord.patch(message_path(webhook, message_id), json=body(content="v2"))
    assert response.status_code == 404
    assert response.json() == {"message": "Unknown Message", "code": 10008}
    assert emulator.messages(webhook.id) == []
    assert emulator.messages(webhook.id, include_deleted=True)[0].deleted is True


async def test_message_of_another_webhook_is_unknown(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    other = emulator.create_webhook()
    message_id = await post(discord, other)
    response = await discord.patch(message_path(webhook, message_id), json=body(content="v2"))
    assert response.status_code == 404
    assert response.json()["code"] == 10008


async def test_message_in_a_thread_needs_its_thread_id_to_be_edited(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    thread_id = emulator.create_thread(webhook.id)
    message_id = await post(discord, webhook, query=f"wait=true&thread_id={thread_id}")
    without = await discord.patch(message_path(webhook, message_id), json=body(content="v2"))
    assert without.status_code == 404
    assert without.json()["code"] == 10008
    within = await discord.patch(
        message_path(webhook, message_id, f"thread_id={thread_id}"), json=body(content="v2")
    )
    assert within.status_code == 200
    assert emulator.messages(webhook.id, thread_id)[0].content == "v2"


async def test_patch_attachments_keeps_the_listed_ones_and_adds_new_files(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a message with two files
    first = body(content="files", attachments=[{"id": 0}, {"id": 1}])
    posted = await discord.post(hook_path(webhook), **multipart(first, ("a", b"A"), ("b", b"B")))
    kept = posted.json()["attachments"][1]["id"]
    # when an edit keeps the second and uploads a third
    edit = body(attachments=[{"id": kept}, {"id": 0, "filename": "c"}])
    response = await discord.patch(
        message_path(webhook, posted.json()["id"]), **multipart(edit, ("c", b"C"))
    )
    # then Discord holds exactly those two
    assert response.status_code == 200, response.text
    stored = emulator.messages(webhook.id)[0]
    assert [(a.filename, a.data) for a in stored.attachments] == [("b", b"B"), ("c", b"C")]
    assert stored.attachments[0].id == kept


async def test_patch_with_an_unknown_attachment_id_is_refused(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    message_id = await post(discord, webhook)
    response = await discord.patch(
        message_path(webhook, message_id),
        json=body(attachments=[{"id": "1300000000000000000"}], content="x"),
    )
    assert response.status_code == 400
    assert error_codes_at(response, "attachments", 0, "id") == ["ATTACHMENT_NOT_FOUND"]


async def test_unknown_or_malformed_message_ids_are_refused(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    unknown = await discord.get(message_path(webhook, "1300000000000000000"))
    assert (unknown.status_code, unknown.json()["code"]) == (404, 10008)
    malformed = await discord.get(message_path(webhook, "abc"))
    assert malformed.status_code == 400
    original = await discord.get(message_path(webhook, "@original"))
    assert original.status_code == 400
