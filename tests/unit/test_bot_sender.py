"""Reading Get Current User: only an accepted answer naming the bot says who it is."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.discord.bot_sender import BotSender, BotUser, bot_user, dm_channel_id
from service.discord.outcome import Disposition, SendOutcome
from service.discord.render import Attachment, Part


@pytest.mark.parametrize(
    ("disposition", "body", "expected"),
    [
        (
            Disposition.DELIVERED,
            {"id": "667788990011223344", "username": "relay"},
            BotUser("667788990011223344", "relay"),
        ),
        (
            Disposition.DELIVERED,
            {"id": 667788990011223344, "username": "relay"},
            BotUser("667788990011223344", "relay"),
        ),
        (Disposition.DELIVERED, {"id": "667788990011223344"}, None),
        (Disposition.DELIVERED, {"username": "relay"}, None),
        (Disposition.DELIVERED, {"id": None, "username": "relay"}, None),
        (Disposition.DELIVERED, None, None),
        (Disposition.PERMANENT, {"id": "1", "username": "relay"}, None),
        (Disposition.TRANSIENT, None, None),
    ],
    ids=["named", "numeric-id", "no-name", "no-id", "null-id", "no-body", "refused", "unanswered"],
)
def test_bot_user_reads_only_an_accepted_answer_that_names_the_bot(
    disposition: Disposition, body: Any, expected: BotUser | None
) -> None:
    outcome = SendOutcome(disposition=disposition, duration_ms=1.0, body=body)
    assert bot_user(outcome) == expected


# -- the requests: what Discord receives -------------------------------------------------------

TOKEN = "Ym90LXRva2VuLXNlY3JldA.GhIjKl.bot-token-secret-" + "z" * 24
CHANNEL = "556677889900112233"


def recording(
    answer: httpx.Response | Exception,
) -> tuple[BotSender, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return BotSender(client, api_base="https://discord.test/api/v10/"), seen


async def test_create_message_carries_the_nonce_and_the_token_only_in_its_header() -> None:
    sender, seen = recording(httpx.Response(200, json={"id": "9", "channel_id": CHANNEL}))
    part = Part({"content": "hi", "allowed_mentions": {"parse": []}})
    outcome = await sender.create_message(TOKEN, CHANNEL, part, nonce="n" * 25)
    [request] = seen
    assert (request.method, request.url.path) == ("POST", f"/api/v10/channels/{CHANNEL}/messages")
    assert request.headers["Authorization"] == f"Bot {TOKEN}"
    assert json.loads(request.content) == {
        "content": "hi",
        "allowed_mentions": {"parse": []},
        "nonce": "n" * 25,
        "enforce_nonce": True,
    }
    assert TOKEN not in str(request.url)
    assert (outcome.disposition, outcome.message_id) == (Disposition.DELIVERED, "9")


async def test_create_message_sends_files_as_the_webhook_sender_does() -> None:
    sender, seen = recording(httpx.Response(200, json={"id": "9"}))
    part = Part(
        {"content": "x", "allowed_mentions": {"parse": []}, "attachments": [{"id": 0}]},
        (Attachment("results-wf.json", b"{}", "application/json"),),
    )
    await sender.create_message(TOKEN, CHANNEL, part, nonce="abc")
    [request] = seen
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body = request.content.decode()
    assert 'name="payload_json"' in body and '"enforce_nonce": true' in body
    assert 'name="files[0]"; filename="results-wf.json"' in body


@pytest.mark.parametrize(
    ("status", "code", "disposition"),
    [
        (403, 50001, Disposition.PERMANENT),
        (403, 50013, Disposition.PERMANENT),
        (403, 50007, Disposition.PERMANENT),
        (404, 10003, Disposition.PERMANENT),
        (401, 0, Disposition.PERMANENT),
        (502, None, Disposition.TRANSIENT),
    ],
)
async def test_refusals_are_classified_like_webhook_answers_and_never_quote_the_token(
    status: int, code: int | None, disposition: Disposition
) -> None:
    body = {"message": "refused", **({"code": code} if code is not None else {})}
    sender, _ = recording(httpx.Response(status, json=body))
    outcome = await sender.create_message(TOKEN, CHANNEL, Part({"content": "x"}), nonce="a")
    assert (outcome.disposition, outcome.http_status, outcome.discord_code) == (
        disposition,
        status,
        code,
    )
    assert TOKEN not in (outcome.error or "")


async def test_an_unanswered_request_is_ambiguous_without_the_token_in_its_error() -> None:
    request = httpx.Request("POST", "https://discord.test/")
    sender, _ = recording(httpx.ReadTimeout(f"timed out: Bot {TOKEN}", request=request))
    outcome = await sender.create_message(TOKEN, CHANNEL, Part({"content": "x"}), nonce="a")
    assert outcome.disposition is Disposition.AMBIGUOUS
    assert TOKEN not in (outcome.error or "")


async def test_channel_messages_reads_a_page_after_a_snowflake() -> None:
    page = [{"id": "12", "content": "a"}, {"id": "11", "content": "b"}]
    sender, seen = recording(httpx.Response(200, json=page))
    read = await sender.channel_messages(TOKEN, CHANNEL, after="10")
    [request] = seen
    assert request.url.path == f"/api/v10/channels/{CHANNEL}/messages"
    assert dict(request.url.params) == {"after": "10", "limit": "100"}
    assert read.messages == tuple(page)
    refused, _ = recording(httpx.Response(403, json={"code": 50001, "message": "no"}))
    denied = await refused.channel_messages(TOKEN, CHANNEL, after="10")
    assert (denied.outcome.discord_code, denied.messages) == (50001, ())


async def test_create_dm_opens_the_channel_and_names_it() -> None:
    sender, seen = recording(httpx.Response(200, json={"id": "77", "type": 1}))
    outcome = await sender.create_dm(TOKEN, "334455667788990011")
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/api/v10/users/@me/channels")
    assert json.loads(request.content) == {"recipient_id": "334455667788990011"}
    assert dm_channel_id(outcome) == "77"
    refused, _ = recording(httpx.Response(400, json={"code": 40003, "message": "slow"}))
    assert dm_channel_id(await refused.create_dm(TOKEN, "1")) is None


async def test_edit_message_always_says_who_may_be_mentioned() -> None:
    sender, seen = recording(httpx.Response(200, json={"id": "9"}))
    await sender.edit_message(TOKEN, CHANNEL, "9", {"content": "@everyone done"})
    [request] = seen
    assert (request.method, request.url.path) == (
        "PATCH",
        f"/api/v10/channels/{CHANNEL}/messages/9",
    )
    assert json.loads(request.content)["allowed_mentions"] == {"parse": []}
