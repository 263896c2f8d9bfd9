"""Delivery over bot routes against the emulator: channel messages with nonces, the fallback
order down to DMs, and reconciliation of unanswered webhook sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.api.deps import Services
from service.app import create_app
from service.config import Settings
from service.delivery.worker import Worker
from service.domain import BotConfig
from service.testing import ConnectionDropped, DiscordEmulator, EmulatedBot, EmulatedWebhook
from tests.conftest import Clock
from tests.integration.test_delivery import attempts, fetch, submit
from tests.support import ACME, BOT_ID, BOT_TOKEN, submission

AFTER_AMBIGUOUS_WAIT = 60.0  # past the wait before a part that may have been posted is resent


class LosingTransport(httpx.ASGITransport):
    """The emulator in-process, where a dropped connection (``drop_after_store``: posted, the
    answer lost) reaches the client as it does over a socket: the server closed the
    connection without an answer."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError("server disconnected", request=request) from exc


@pytest.fixture
async def app(
    settings: Settings, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings,
        clock=clock,
        background=False,
        discord_transport=LosingTransport(app=emulator.app),
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def bot(client: httpx.AsyncClient, emulator: DiscordEmulator) -> EmulatedBot:
    """The tenant's bot, set through the API (checked with Discord)."""
    bot = emulator.create_bot()
    response = await client.put("/v1/bot", json={"token": bot.token}, headers=ACME)
    assert response.status_code == 200, response.text
    return bot


def result(workflow_id: str, **destination: str) -> dict[str, Any]:
    return submission(workflow_id, destination=destination)


def webhook_parts(emulator: DiscordEmulator, hook: EmulatedWebhook) -> list[str]:
    return [m.id for m in emulator.messages(hook.id)]


async def metric(client: httpx.AsyncClient, name: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def test_a_channel_result_is_posted_by_the_bot_with_a_nonce(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    bot: EmulatedBot,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a result whose only target is a channel of the tenant's bot
    channel = emulator.create_channel()
    await submit(client, result("wf_c", channel_id=channel.id))
    # when the worker runs
    await worker.drain()
    # then the bot posted it there once, marked, and the store holds that message
    [message] = emulator.channel_messages(channel.id)
    assert message.content is not None and message.content.endswith("-# result `wf_c`")
    assert message.allowed_mentions is not None and message.allowed_mentions["parse"] == []
    record = await fetch(client, "wf_c")
    assert record["status"] == "delivered"
    assert record["messages"][0] == {**record["messages"][0], "message_id": message.id}
    assert record["messages"][0]["route"] == "channel"
    history = await attempts(client, "wf_c")
    assert [a["route"] for a in history] == ["channel"]
    assert emulator.counters.premature_requests == 0
    # and the bot token is nowhere but in Discord's Authorization header
    metrics = (await client.get("/metrics")).text
    shown = (await client.get("/v1/bot", headers=ACME)).text
    for text in (caplog.text, metrics, shown, str(record), str(history)):
        assert bot.token not in text
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    for file in database.parent.glob(database.name + "*"):
        assert bot.token.encode() not in file.read_bytes()


async def test_bot_routes_keep_to_each_channels_bucket_and_the_bots_own_limit(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, bot: EmulatedBot
) -> None:
    # given tight limits per bot route and channel, and for the bot as a whole
    emulator.set_limits(bot_route=(2, 0.3), bot_global=(4, 0.4))
    channels = [emulator.create_channel() for _ in range(3)]
    for i in range(12):
        await submit(client, result(f"wf_{i}", channel_id=channels[i % 3].id))
    # when the worker delivers them all
    await worker.drain()
    # then each arrived once, and no request came before its bucket allowed it
    assert sum(len(emulator.channel_messages(c.id)) for c in channels) == 12
    assert emulator.counters.premature_requests == 0
    assert emulator.counters.rate_limited.get("user", 0) == 0


async def test_a_channel_result_is_delivered_once_when_the_first_answer_is_lost(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    bot: EmulatedBot,
    clock: Clock,
) -> None:
    # given a channel whose first Create Message is stored but its answer lost
    channel = emulator.create_channel()
    emulator.inject_fault("drop_after_store", channel_id=channel.id)
    await submit(client, result("wf_lost", channel_id=channel.id))
    # when the worker sends, waits, and sends again
    await worker.drain()
    assert (await fetch(client, "wf_lost"))["status"] == "pending"
    clock.advance(AFTER_AMBIGUOUS_WAIT)
    await worker.drain()
    # then the nonce made Discord answer with the message it had: one message, delivered
    [message] = emulator.channel_messages(channel.id)
    assert emulator.counters.nonce_deduplicated == 1
    record = await fetch(client, "wf_lost")
    assert (record["status"], record["messages"][0]["message_id"]) == ("delivered", message.id)
    outcomes = [(a["route"], a["outcome"]) for a in await attempts(client, "wf_lost")]
    assert outcomes == [("channel", "ambiguous"), ("channel", "delivered")]


async def test_a_dead_webhook_falls_back_to_the_bot_channel(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, bot: EmulatedBot
) -> None:
    # given a webhook deleted after the result was accepted, and a channel for the bot
    hook = emulator.create_webhook()
    channel = emulator.create_channel()
    await submit(client, result("wf_fb", webhook_url=hook.url, channel_id=channel.id))
    emulator.delete_webhook(hook.id)
    # when the worker runs
    await worker.drain()
    # then the bot posted it in the channel, after the webhook's refusal
    [message] = emulator.channel_messages(channel.id)
    record = await fetch(client, "wf_fb")
    assert (record["status"], record["messages"][0]["message_id"]) == ("delivered", message.id)
    outcomes = [(a["route"], a["outcome"]) for a in await attempts(client, "wf_fb")]
    assert outcomes == [("webhook", "dead_webhook"), ("channel", "delivered")]
    assert emulator.counters.requests_after_404 == 0


async def test_a_result_for_a_webhook_already_dead_goes_to_the_bot_without_asking_it(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    bot: EmulatedBot,
    services: Services,
    clock: Clock,
) -> None:
    # given a webhook known dead for its token (another process saw it die)
    hook = emulator.create_webhook()
    channel = emulator.create_channel()
    await services.store.kill_webhook(hook.id, hook.token, reason="webhook_deleted", now=clock())
    # when a result for it that names the bot's channel arrives and is delivered
    accepted = await submit(client, result("wf_late", webhook_url=hook.url, channel_id=channel.id))
    assert accepted["status"] == "pending"
    await worker.drain()
    # then the bot posted it, and the dead webhook was not called again
    [message] = emulator.channel_messages(channel.id)
    record = await fetch(client, "wf_late")
    assert (record["status"], record["messages"][0]["message_id"]) == ("delivered", message.id)
    assert emulator.messages(hook.id) == []
    assert emulator.counters.bot_requests.get("POST /channels/{channel_id}/messages") == 1
    assert [a["route"] for a in await attempts(client, "wf_late")] == ["channel"]


async def test_without_a_bot_a_dead_webhook_still_orphans_its_results(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given two results for a webhook that is then deleted, one naming a channel, and no bot
    hook = emulator.create_webhook()
    channel = emulator.create_channel()
    await submit(client, result("wf_1", webhook_url=hook.url, channel_id=channel.id))
    await submit(client, result("wf_2", webhook_url=hook.url))
    emulator.delete_webhook(hook.id)
    # when the worker runs
    await worker.drain()
    # then both are orphaned with the webhook's reason, after one request to it
    for workflow_id in ("wf_1", "wf_2"):
        record = await fetch(client, workflow_id)
        assert (record["status"], record["retrieval_info"]["reason"]) == (
            "orphaned",
            "webhook_deleted",
        )
    assert emulator.counters.requests_after_404 == 0
    assert emulator.channel_messages(channel.id) == []


async def test_with_dms_closed_the_last_refusal_names_the_orphan(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, bot: EmulatedBot
) -> None:
    # given a dead webhook, a channel the bot may not post in, and a requester with DMs closed
    hook = emulator.create_webhook()
    channel = emulator.create_channel()
    emulator.set_access(channel.id, bot.id, send=False)
    user = emulator.create_user(dms_open=False)
    body = result("wf_dm", webhook_url=hook.url, channel_id=channel.id)
    body.update(requester={"user_id": user.id}, dm_fallback=True)
    await submit(client, body)
    emulator.delete_webhook(hook.id)
    # when the worker runs
    await worker.drain()
    # then every route was tried once, in order, and the reason is the last refusal
    record = await fetch(client, "wf_dm")
    assert (record["status"], record["retrieval_info"]["reason"]) == ("orphaned", "dm_closed")
    outcomes = [
        (a["route"], a["outcome"], a["discord_code"]) for a in await attempts(client, "wf_dm")
    ]
    assert outcomes == [
        ("webhook", "dead_webhook", 10015),
        ("channel", "fallback", 50013),
        ("dm", "fallback", 50007),
    ]
    assert emulator.dm_messages(user.id) == []


async def test_a_dm_fallback_arrives_in_the_requesters_dm(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, bot: EmulatedBot
) -> None:
    # given a channel the bot cannot see, and a requester whose result allows a DM
    channel = emulator.create_channel()
    emulator.set_access(channel.id, bot.id, view=False)
    user = emulator.create_user()
    body = result("wf_dm", channel_id=channel.id)
    body.update(requester={"user_id": user.id}, dm_fallback=True)
    await submit(client, body)
    # when the worker runs
    await worker.drain()
    # then the result is in the requester's DM with the bot
    [message] = emulator.dm_messages(user.id)
    assert message.content is not None and message.content.startswith(f"<@{user.id}>")
    record = await fetch(client, "wf_dm")
    assert (record["status"], record["messages"][0]["route"]) == ("delivered", "dm")
    outcomes = [(a["route"], a["outcome"]) for a in await attempts(client, "wf_dm")]
    assert outcomes == [("channel", "fallback"), ("dm", "delivered")]
    assert emulator.counters.dms_opened == 1


async def test_without_dm_consent_a_refused_channel_orphans_the_result(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, bot: EmulatedBot
) -> None:
    channel = emulator.create_channel()
    emulator.set_access(channel.id, bot.id, view=False)
    user = emulator.create_user()
    body = result("wf_no_dm", channel_id=channel.id)
    body.update(requester={"user_id": user.id})  # the tenant's default: no DMs
    await submit(client, body)
    await worker.drain()
    record = await fetch(client, "wf_no_dm")
    assert (record["status"], record["retrieval_info"]["reason"]) == (
        "orphaned",
        "missing_access",
    )
    assert emulator.dm_messages(user.id) == []
    assert emulator.counters.dms_opened == 0


async def test_a_refused_bot_token_orphans_with_a_clear_reason(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    services: Services,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a bot whose token Discord no longer takes (reset by its owner after it was set)
    await services.store.put_bot(
        BotConfig(tenant="acme", bot_id=BOT_ID, username="gone", token=BOT_TOKEN), now=clock()
    )
    channel = emulator.create_channel()
    for workflow_id in ("wf_a", "wf_b"):
        await submit(client, result(workflow_id, channel_id=channel.id))
    # when the worker runs
    await worker.drain()
    # then both are orphaned, and the dead token was used once only
    for workflow_id in ("wf_a", "wf_b"):
        record = await fetch(client, workflow_id)
        assert (record["status"], record["retrieval_info"]["reason"]) == (
            "orphaned",
            "bot_token_invalid",
        )
    assert emulator.counters.unauthorized == 1
    # and the log says so once, without the token
    said = [r for r in caplog.records if "refused the bot token" in r.getMessage()]
    assert len(said) == 1
    assert BOT_TOKEN not in caplog.text


async def lose_first_answer(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> EmulatedWebhook:
    """A registered destination (Get Webhook told its channel) whose first send is posted but
    its answer lost; the worker sends, waits, and comes back."""
    hook = emulator.create_webhook()
    put = await client.put("/v1/destinations/alerts", json={"webhook_url": hook.url}, headers=ACME)
    assert put.status_code == 201, put.text
    emulator.inject_fault("drop_after_store", webhook_id=hook.id)
    await submit(client, submission("wf_r", destination={"name": "alerts"}))
    await worker.drain()
    assert len(webhook_parts(emulator, hook)) == 1
    clock.advance(AFTER_AMBIGUOUS_WAIT)
    await worker.drain()
    return hook


async def test_an_unanswered_webhook_send_is_found_by_the_bot_not_resent(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    bot: EmulatedBot,
    clock: Clock,
) -> None:
    hook = await lose_first_answer(client, emulator, worker, clock)
    # then the bot read the channel, found the marked message, and nothing was sent again
    [posted] = webhook_parts(emulator, hook)
    record = await fetch(client, "wf_r")
    assert (record["status"], record["messages"][0]["message_id"]) == ("delivered", posted)
    outcomes = [(a["route"], a["outcome"]) for a in await attempts(client, "wf_r")]
    assert outcomes == [("webhook", "ambiguous"), ("webhook", "reconciled")]
    assert await metric(client, "relay_reconciled_total") == 1.0
    assert emulator.counters.bot_requests["GET /channels/{channel_id}/messages"] == 1


async def test_an_unanswered_webhook_send_is_resent_when_the_bot_cannot_read_the_channel(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    bot: EmulatedBot,
    clock: Clock,
) -> None:
    # given a bot that may not read the webhook's channel's history
    hook = emulator.create_webhook()
    emulator.set_access(hook.channel_id, bot.id, read_history=False)
    put = await client.put("/v1/destinations/alerts", json={"webhook_url": hook.url}, headers=ACME)
    assert put.status_code == 201, put.text
    emulator.inject_fault("drop_after_store", webhook_id=hook.id)
    await submit(client, submission("wf_r", destination={"name": "alerts"}))
    await worker.drain()
    clock.advance(AFTER_AMBIGUOUS_WAIT)
    await worker.drain()
    # then the part was sent again as before: the duplicate shows as an ambiguous attempt
    assert len(webhook_parts(emulator, hook)) == 2
    outcomes = [(a["route"], a["outcome"]) for a in await attempts(client, "wf_r")]
    assert outcomes == [("webhook", "ambiguous"), ("webhook", "delivered")]
    assert await metric(client, "relay_reconciled_total") == 0.0


async def test_a_redeliver_posts_again_with_a_new_nonce(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, bot: EmulatedBot
) -> None:
    channel = emulator.create_channel()
    await submit(client, result("wf_again", channel_id=channel.id))
    await worker.drain()
    response = await client.post("/v1/results/wf_again/redeliver", headers=ACME)
    assert response.status_code in (200, 202), response.text
    await worker.drain()
    assert len(emulator.channel_messages(channel.id)) == 2
    assert emulator.counters.nonce_deduplicated == 0
