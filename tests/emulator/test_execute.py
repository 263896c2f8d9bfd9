"""Execute Webhook, Get Webhook and the routing rules around them."""

from __future__ import annotations

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedWebhook
from tests.emulator.support import body, hook_path, message_path, multipart, spec_validator


async def test_execute_with_wait_returns_the_stored_message(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a webhook; when a message is posted with wait=true
    response = await discord.post(hook_path(webhook), json=body(content="hello"))
    # then Discord answers 200 with the message, and stored exactly that
    assert response.status_code == 200
    message = response.json()
    assert message["content"] == "hello"
    assert message["channel_id"] == webhook.channel_id
    assert message["webhook_id"] == webhook.id
    [stored] = emulator.messages(webhook.id)
    assert stored.id == message["id"]
    assert stored.content == "hello"
    assert stored.allowed_mentions == {"parse": []}
    assert stored.payload == {"content": "hello", "allowed_mentions": {"parse": []}}


async def test_message_object_matches_discords_message_response_schema(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    thread_id = emulator.create_thread(webhook.id)
    payload = body(
        content="report",
        embeds=[{"title": "t", "fields": [{"name": "a", "value": "b"}], "footer": {"text": "f"}}],
        attachments=[{"id": 0, "filename": "r.md", "description": "full report"}],
    )
    response = await discord.post(
        hook_path(webhook, query=f"wait=true&thread_id={thread_id}"),
        **multipart(payload, ("r.md", b"# report")),
    )
    assert response.status_code == 200
    assert list(spec_validator("MessageResponse").iter_errors(response.json())) == []


async def test_execute_without_wait_answers_204_and_still_stores(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook, query=""), json=body(content="fire"))
    assert response.status_code == 204
    assert response.content == b""
    assert [m.content for m in emulator.messages(webhook.id)] == ["fire"]


async def test_wait_false_answers_204(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook, query="wait=false"), json=body(content="x"))
    assert response.status_code == 204


async def test_wait_that_is_not_a_boolean_is_refused_with_50035(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook, query="wait=yes"), json=body(content="x"))
    assert response.status_code == 400
    assert response.json()["code"] == 50035
    assert "wait" in response.json()["errors"]
    assert emulator.counters.other_400s == 1
    assert emulator.messages(webhook.id) == []


async def test_thread_id_posts_into_the_thread(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    thread_id = emulator.create_thread(webhook.id)
    response = await discord.post(
        hook_path(webhook, query=f"wait=true&thread_id={thread_id}"), json=body(content="in")
    )
    assert response.status_code == 200
    assert response.json()["channel_id"] == thread_id
    assert [m.content for m in emulator.messages(webhook.id, thread_id)] == ["in"]
    assert emulator.messages(webhook.id)[0].thread_id == thread_id


async def test_unknown_thread_is_refused_with_10003(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    other = emulator.create_webhook()
    foreign_thread = emulator.create_thread(other.id)
    for thread_id in ("1300000000000000000", foreign_thread):
        response = await discord.post(
            hook_path(webhook, query=f"wait=true&thread_id={thread_id}"), json=body(content="x")
        )
        assert response.status_code == 404
        assert response.json() == {"message": "Unknown Channel", "code": 10003}
    assert emulator.messages(webhook.id) == []


async def test_malformed_thread_id_is_refused_as_not_a_snowflake(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        hook_path(webhook, query="wait=true&thread_id=abc"), json=body(content="x")
    )
    assert response.status_code == 400
    assert response.json()["errors"]["thread_id"]["_errors"][0]["message"] == (
        'Value "abc" is not snowflake.'
    )


async def test_wrong_token_on_a_known_webhook_is_refused_with_401_50027(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    wrong = EmulatedWebhook(webhook.id, "A" * 68, webhook.channel_id, webhook.guild_id)
    response = await discord.post(hook_path(wrong), json=body(content="x"))
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid Webhook Token", "code": 50027}
    assert emulator.counters.invalid_requests_10min == 1
    # when the client tries again with the same dead URL, that is counted
    await discord.post(hook_path(wrong), json=body(content="x"))
    assert emulator.counters.requests_after_401 == 1
    assert emulator.messages(webhook.id) == []


async def test_unknown_webhook_is_refused_with_404_10015(
    discord: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    ghost = EmulatedWebhook("1300000000000000001", "B" * 68, "1", "1")
    response = await discord.post(hook_path(ghost), json=body(content="x"))
    assert response.status_code == 404
    assert response.json() == {"message": "Unknown Webhook", "code": 10015}
    assert emulator.counters.requests_after_404 == 0


async def test_deleted_webhook_answers_10015_and_counts_every_later_call(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a webhook that was deleted
    emulator.delete_webhook(webhook.id)
    # when the client posts, then checks the URL, then posts again
    first = await discord.post(hook_path(webhook), json=body(content="x"))
    check = await discord.get(hook_path(webhook, query=""))
    again = await discord.post(hook_path(webhook), json=body(content="x"))
    # then every answer is 404 / 10015 and the calls after the first are misbehaviour
    for response in (first, check, again):
        assert response.status_code == 404
        assert response.json()["code"] == 10015
    assert emulator.counters.requests_after_404 == 2


async def test_malformed_webhook_id_is_refused_as_not_a_snowflake(
    discord: httpx.AsyncClient,
) -> None:
    response = await discord.post("/api/v10/webhooks/xyz/token?wait=true", json=body(content="x"))
    assert response.status_code == 400
    assert response.json()["errors"]["webhook_id"]["_errors"] == [
        {"code": "NUMBER_TYPE_COERCE", "message": 'Value "xyz" is not snowflake.'}
    ]


async def test_get_webhook_returns_discords_webhook_object(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.get(hook_path(webhook, query=""))
    assert response.status_code == 200
    assert response.json() == {
        "application_id": None,
        "avatar": None,
        "channel_id": webhook.channel_id,
        "guild_id": webhook.guild_id,
        "id": webhook.id,
        "name": "relay-test",
        "type": 1,
        "token": webhook.token,
    }
    assert "X-RateLimit-Bucket" in response.headers


async def test_delete_webhook_with_token_kills_it(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    assert (await discord.delete(hook_path(webhook, query=""))).status_code == 204
    assert (await discord.get(hook_path(webhook, query=""))).status_code == 404


async def test_modify_webhook_with_token_renames_it(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await discord.patch(hook_path(webhook, query=""), json={"name": "results"})
    assert response.status_code == 200
    assert response.json()["name"] == "results"
    bad = await discord.patch(hook_path(webhook, query=""), json={"name": ""})
    assert bad.status_code == 400


@pytest.mark.parametrize("version", ["v10", "v9", "v8"])
async def test_versioned_api_paths_are_served(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, version: str
) -> None:
    response = await discord.post(hook_path(webhook, version=version), json=body(content="x"))
    assert response.status_code == 200
    assert emulator.counters.unversioned_requests == 0


async def test_unversioned_path_is_served_but_counted(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(hook_path(webhook, version=""), json=body(content="x"))
    assert response.status_code == 200
    assert emulator.counters.unversioned_requests == 1


async def test_unknown_routes_answer_discords_json_404(discord: httpx.AsyncClient) -> None:
    for path in ("/api/v10/guilds/1/channels", "/api/v7/webhooks/1/t", "/api/v10/nothing"):
        response = await discord.get(path)
        assert response.status_code == 404
        assert response.json() == {"message": "404: Not Found", "code": 0}


async def test_missing_or_foreign_user_agent_is_counted(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    await discord.post(hook_path(webhook), json=body(content="x"))
    await discord.post(hook_path(webhook), json=body(content="x"), headers={"User-Agent": "x/1"})
    counters = emulator.counters
    assert counters.total_requests == 2
    assert counters.bad_user_agent == 1


async def test_multipart_upload_stores_files_with_their_bytes(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    payload = body(
        content="see files",
        attachments=[{"id": 0, "filename": "a.md"}, {"id": "1", "filename": "renamed.json"}],
    )
    response = await discord.post(
        hook_path(webhook), **multipart(payload, ("a.md", b"# A"), ("b.json", b"{}"))
    )
    assert response.status_code == 200
    assert [a["filename"] for a in response.json()["attachments"]] == ["a.md", "renamed.json"]
    [stored] = emulator.messages(webhook.id)
    assert [(a.filename, a.size, a.data) for a in stored.attachments] == [
        ("a.md", 3, b"# A"),
        ("renamed.json", 2, b"{}"),
    ]


async def test_file_only_message_without_payload_json_is_accepted(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        hook_path(webhook), files=[("files[0]", ("a.txt", b"x", "text/plain"))]
    )
    assert response.status_code == 200
    assert emulator.messages(webhook.id)[0].attachments[0].filename == "a.txt"
    assert emulator.counters.bad_allowed_mentions == 1


async def test_get_message_returns_it_and_messages_stay_in_arrival_order(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    ids = []
    for text in ("one", "two", "three"):
        ids.append((await discord.post(hook_path(webhook), json=body(content=text))).json()["id"])
    assert [m.id for m in emulator.messages(webhook.id)] == ids
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    got = await discord.get(message_path(webhook, ids[1]))
    assert got.status_code == 200
    assert got.json()["content"] == "two"


async def test_token_with_foreign_characters_is_just_a_wrong_token(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    response = await discord.post(
        f"/api/v10/webhooks/{webhook.id}/t%C3%B6ken?wait=true", json=body(content="x")
    )
    assert response.status_code == 401
    assert response.json()["code"] == 50027
