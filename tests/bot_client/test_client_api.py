"""RelayClient against the real service app in-process: every call, and every error mapped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from discord_webhook import DiscordEmbed
from fastapi import FastAPI

from bot_client import (
    AuthenticationError,
    ConflictError,
    Destination,
    NotFoundError,
    PayloadTooLargeError,
    RelayClient,
    RelayError,
    Requester,
    RunCreate,
    ValidationError,
)
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook
from tests.bot_client.conftest import MAX_BODY_BYTES
from tests.conftest import Clock
from tests.support import FAKE_TOKEN, USER_ID, webhook_url


async def test_submit_then_same_body_again_is_a_duplicate_not_an_error(
    relay: RelayClient, hook: EmulatedWebhook
) -> None:
    # given a result submitted once
    first = await relay.submit_result(
        workflow_id="wf_1",
        results={"summary": "All clear", "deception_score": 0.12},
        url="https://youtube.com/watch?v=abc",
        depth="experimental",
        destination=hook.url,
        requester=Requester(user_id=USER_ID),
    )
    # when the very same submission comes again (a retry after a lost answer)
    again = await relay.submit_result(
        workflow_id="wf_1",
        results={"deception_score": 0.12, "summary": "All clear"},
        url="https://youtube.com/watch?v=abc",
        depth="experimental",
        destination=Destination(webhook_url=hook.url),
        requester=Requester(user_id=int(USER_ID)),
    )
    # then the first is accepted, the second a duplicate of the same record
    assert first.status == "accepted" and first.record is not None
    assert again.status == "duplicate" and again.record is not None
    assert first.record.status == "pending"
    assert again.record.created_at == first.record.created_at
    assert first.record.destination is not None
    assert first.record.destination.webhook_id == hook.id


async def test_get_result_reads_back_results_messages_and_retrieval_info(
    relay: RelayClient, hook: EmulatedWebhook, emulator: DiscordEmulator, worker: Worker
) -> None:
    await relay.submit_result(
        workflow_id="wf_read", results={"summary": "ok"}, destination=hook.url
    )
    await worker.drain()
    record = await relay.get_result("wf_read")
    [message] = emulator.messages(hook.id)
    assert record.status == "delivered"
    assert record.results == {"summary": "ok"}
    assert [m.message_id for m in record.messages] == [message.id]
    assert record.messages[0].route == "webhook"
    assert record.retrieval_info.command == "/retrieve_results workflow_id:wf_read"
    [attempt] = await relay.list_attempts("wf_read")
    assert (attempt.outcome, attempt.http_status) == ("delivered", 200)


async def test_list_results_follows_cursors_across_pages(
    relay: RelayClient, hook: EmulatedWebhook, clock: Clock
) -> None:
    # given seven results, one second apart, and one from someone else
    for n in range(7):
        await relay.submit_result(
            workflow_id=f"wf_{n}",
            results={"n": n},
            destination=hook.url,
            requester=Requester(user_id=USER_ID),
        )
        clock.advance(1)
    await relay.submit_result(workflow_id="wf_other", results={}, destination=hook.url)
    # when listed three per page
    listed = [
        item.workflow_id async for item in relay.list_results(requester_id=USER_ID, page_size=3)
    ]
    # then every one comes, newest first, once
    assert listed == [f"wf_{n}" for n in reversed(range(7))]
    first_page = await relay.list_page(requester_id=USER_ID, limit=3)
    assert len(first_page.items) == 3 and first_page.next_cursor is not None
    # and the time filters narrow it
    since = datetime.fromtimestamp(clock.now - 3, UTC)
    recent = [item.workflow_id async for item in relay.list_results(since=since, page_size=2)]
    assert recent == ["wf_other", "wf_6", "wf_5", "wf_4"]
    assert [i async for i in relay.list_results(status="orphaned")] == []


async def test_q_finds_results_and_runs_by_a_piece_of_their_id_or_url(
    relay: RelayClient, hook: EmulatedWebhook, clock: Clock
) -> None:
    # given results and runs whose ids and URLs differ by case and by an underscore
    for workflow_id, url in (("Scan_1", "https://ci.example/a"), ("scan-2", "https://x/50%")):
        await relay.submit_result(
            workflow_id=workflow_id, results={}, url=url, destination=hook.url
        )
        await relay.start_run(
            RunCreate(
                workflow_id=f"run-{workflow_id}",
                destination=Destination(webhook_url=hook.url),
                requester=Requester(user_id=USER_ID),
                url=url,
            )
        )
        clock.advance(1)
    # when listed with q, then both kinds match either field in either case, literally
    assert [r.workflow_id async for r in relay.list_results(q="SCAN", page_size=1)] == [
        "scan-2",
        "Scan_1",
    ]
    assert [r.workflow_id for r in (await relay.list_page(q="n_")).items] == ["Scan_1"]
    assert [r.workflow_id for r in (await relay.list_page(q="50%")).items] == ["scan-2"]
    runs = [r async for r in relay.list_runs(q="CI.EXAMPLE")]
    assert [r.workflow_id for r in runs] == ["run-Scan_1"]
    assert runs[0].requester == Requester(user_id=USER_ID)
    page = await relay.list_run_page(q="run-scan", limit=1)
    assert [r.workflow_id for r in page.items] == ["run-scan-2"] and page.next_cursor
    # and a q the service refuses is a validation error, not an empty list
    with pytest.raises(ValidationError):
        await relay.list_page(q="x" * 101)


async def test_redeliver_sends_again_to_another_destination(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, worker: Worker
) -> None:
    await relay.submit_result(workflow_id="wf_re", results={"a": 1}, destination=hook.url)
    await worker.drain()
    other = emulator.create_webhook()
    record = await relay.redeliver("wf_re", destination=other.url)
    assert record.status == "pending"
    await worker.drain()
    assert len(emulator.messages(hook.id)) == 1
    assert len(emulator.messages(other.id)) == 1
    assert (await relay.get_result("wf_re")).status == "delivered"
    with pytest.raises(NotFoundError):
        await relay.redeliver("wf_missing")


async def test_destinations_register_list_use_and_remove(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, worker: Worker
) -> None:
    thread = emulator.create_thread(hook.id)
    created = await relay.put_destination("alerts", hook.url, thread_id=thread)
    assert (created.name, created.webhook_id, created.thread_id) == ("alerts", hook.id, thread)
    assert [d.name for d in await relay.list_destinations()] == ["alerts"]
    assert (await relay.get_destination("alerts")).webhook_id == hook.id
    # a result sent to the name lands in the thread
    await relay.submit_result(
        workflow_id="wf_named", results={"x": 1}, destination=Destination(name="alerts")
    )
    await worker.drain()
    assert len(emulator.messages(hook.id, thread_id=thread)) == 1
    await relay.delete_destination("alerts")
    assert await relay.list_destinations() == []
    with pytest.raises(NotFoundError):
        await relay.delete_destination("alerts")


async def test_a_webhook_discord_does_not_know_is_refused_with_its_code(
    relay: RelayClient,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await relay.put_destination("ghost", webhook_url())
    assert caught.value.code == "webhook_not_found"
    assert FAKE_TOKEN not in str(caught.value)


async def test_the_tenants_bot_is_set_read_used_for_a_channel_and_removed(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook
) -> None:
    # given a bot Discord knows
    bot = emulator.create_bot(username="relay-bot")
    channel = emulator.create_channel()
    # when it is set, it reads back without its token
    info = await relay.set_bot(bot.token, dm_fallback=True)
    assert (info.id, info.username, info.dm_fallback, info.source) == (
        bot.id,
        "relay-bot",
        True,
        "api",
    )
    assert await relay.get_bot() == info
    assert bot.token not in repr(info)
    # and a result may name the bot's channel, alone or beside a webhook
    alone = await relay.submit_result(
        workflow_id="wf_channel", results={"a": 1}, channel_id=channel.id, dm_fallback=False
    )
    assert alone.record is not None and alone.record.destination is not None
    assert (alone.record.destination.channel_id, alone.record.destination.webhook_id) == (
        channel.id,
        None,
    )
    assert alone.record.dm_fallback is False
    beside = await relay.submit_result(
        workflow_id="wf_beside", results={}, destination=hook.url, channel_id=int(channel.id)
    )
    assert beside.record is not None and beside.record.destination is not None
    assert beside.record.destination.webhook_id == hook.id
    assert beside.record.destination.channel_id == channel.id
    # when it is removed, it is gone, and a channel alone is refused
    await relay.delete_bot()
    with pytest.raises(NotFoundError) as missing:
        await relay.get_bot()
    assert missing.value.code == "no_bot"
    with pytest.raises(ValidationError) as refused:
        await relay.submit_result(workflow_id="wf_later", results={}, channel_id=channel.id)
    assert refused.value.code == "no_bot"


async def test_a_bot_token_discord_refuses_raises_without_showing_it(relay: RelayClient) -> None:
    token = "cmVmdXNlZC1ib3Q.AbCdEf.refused-token-secret-" + "r" * 24
    with pytest.raises(ValidationError) as caught:
        await relay.set_bot(token)
    assert caught.value.code == "bot_token_refused"
    assert token not in str(caught.value) and token not in repr(caught.value)


async def test_delete_result_then_it_is_gone(relay: RelayClient, hook: EmulatedWebhook) -> None:
    await relay.submit_result(workflow_id="wf_del", results={}, destination=hook.url)
    await relay.delete_result("wf_del")
    with pytest.raises(NotFoundError) as caught:
        await relay.get_result("wf_del")
    assert (caught.value.status_code, caught.value.code) == (404, "not_found")
    with pytest.raises(NotFoundError):
        await relay.delete_result("wf_del")


async def test_wrong_api_key_is_an_authentication_error(app: FastAPI) -> None:
    async with RelayClient(
        "http://relay", api_key="not-a-key-0123456789", transport=httpx.ASGITransport(app=app)
    ) as stranger:
        with pytest.raises(AuthenticationError) as caught:
            await stranger.get_result("wf_1")
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")
    assert "not-a-key-0123456789" not in str(caught.value)


async def test_another_body_under_the_same_id_is_a_conflict(
    relay: RelayClient, hook: EmulatedWebhook, spool_dir: Path
) -> None:
    await relay.submit_result(workflow_id="wf_c", results={"v": 1}, destination=hook.url)
    with pytest.raises(ConflictError) as caught:
        await relay.submit_result(workflow_id="wf_c", results={"v": 2}, destination=hook.url)
    assert (caught.value.status_code, caught.value.code) == (409, "workflow_id_conflict")
    assert not spool_dir.exists()  # a refusal is not spooled


async def test_a_field_breaking_a_rule_is_a_validation_error_with_details(
    relay: RelayClient,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await relay.submit_result(workflow_id="not valid!", results={}, destination=webhook_url())
    error = caught.value
    assert (error.status_code, error.code) == (422, "invalid_workflow_id")
    assert [(d.field, d.code) for d in error.details] == [("workflow_id", "invalid_workflow_id")]


async def test_a_bad_webhook_url_is_refused_without_echoing_its_token(
    relay: RelayClient,
) -> None:
    bad = webhook_url(host="evil.example.com")
    with pytest.raises(ValidationError) as caught:
        await relay.submit_result(workflow_id="wf_bad", results={}, destination=bad)
    assert caught.value.code == "invalid_webhook_url"
    assert FAKE_TOKEN not in str(caught.value)
    assert all(FAKE_TOKEN not in d.message for d in caught.value.details)


async def test_no_destination_at_all_is_refused(relay: RelayClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await relay.submit_result(workflow_id="wf_nowhere", results={})
    assert caught.value.code == "missing_destination"


async def test_an_oversized_body_is_payload_too_large_and_not_spooled(
    relay: RelayClient, hook: EmulatedWebhook, spool_dir: Path
) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        await relay.submit_result(
            workflow_id="wf_big", results={"blob": "x" * MAX_BODY_BYTES}, destination=hook.url
        )
    assert (caught.value.status_code, caught.value.code) == (413, "payload_too_large")
    assert isinstance(caught.value, RelayError)
    assert not spool_dir.exists()


async def test_embeds_from_discord_webhook_arrive_as_plain_embeds(
    relay: RelayClient, emulator: DiscordEmulator, hook: EmulatedWebhook, worker: Worker
) -> None:
    # given a bot that builds embeds with discord-webhook, mixed with a plain dict
    embed = DiscordEmbed(title="Verdict", description="No manipulation found", color="03b2f8")
    embed.add_embed_field(name="Score", value="0.12")
    embed.set_footer(text="autointel")
    # when it submits them as its own message
    outcome = await relay.submit_result(
        workflow_id="wf_embeds",
        results={"score": 0.12},
        message={"content": "Done.", "embeds": [embed, {"title": "Plain"}]},
        destination=hook.url,
    )
    # then the service stores plain embed dicts and Discord receives them
    assert outcome.record is not None and outcome.record.message is not None
    assert outcome.record.message["embeds"] == [
        {
            "title": "Verdict",
            "description": "No manipulation found",
            "color": 0x03B2F8,
            "fields": [{"name": "Score", "value": "0.12", "inline": True}],
            "footer": {"text": "autointel"},
        },
        {"title": "Plain"},
    ]
    await worker.drain()
    [message] = emulator.messages(hook.id)
    assert [e.get("title") for e in message.embeds] == ["Verdict", "Plain"]
    assert emulator.counters.payload_400s == 0


async def test_reprs_never_show_tokens() -> None:
    destination = Destination(webhook_url=webhook_url())
    assert FAKE_TOKEN not in repr(destination)
    async with RelayClient("http://relay", api_key="secret-key-0123456789") as client:
        assert "secret-key-0123456789" not in repr(client)
