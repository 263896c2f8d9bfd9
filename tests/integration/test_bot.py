"""The tenant's bot: ``/v1/bot`` checked with Discord (the emulator), ``RELAY_bot.tokenS``, and
results that name a channel."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.bots import sync_configured_bots
from service.config import Settings, load_settings
from service.discord.bot_sender import BotSender
from service.discord.sender import make_discord_client
from service.domain import BotConfig
from service.logs import JsonFormatter
from service.store.sqlite import SQLiteStore
from service.testing import DiscordEmulator, EmulatedBot
from tests.conftest import Clock
from tests.support import (
    ACME,
    API_KEYS,
    CHANNEL_ID,
    OTHER,
    SECRET_KEY,
    USER_ID,
    submission,
)

# A token of the right shape that Discord (the emulator) never issued.
REFUSED_TOKEN = "cmVmdXNlZC1ib3Q.AbCdEf.refused-token-secret-" + "r" * 24
GET_CURRENT_USER = "GET /users/@me"


@pytest.fixture
def bot(emulator: DiscordEmulator) -> EmulatedBot:
    return emulator.create_bot(username="relay-bot")


@pytest.fixture
def relay(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The service in-process, Discord the emulator (see tests/conftest.py)."""
    return client


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``settings`` with its lifespan (configured bots are checked here)."""
    app = create_app(
        settings,
        clock=clock,
        background=False,
        discord_transport=httpx.ASGITransport(app=emulator.app),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            yield client


def to_channel(workflow_id: str, **overrides: Any) -> dict[str, Any]:
    return submission(workflow_id, destination={"channel_id": CHANNEL_ID}, **overrides)


async def test_a_bot_is_checked_with_discord_kept_for_its_tenant_and_forgotten(
    relay: httpx.AsyncClient, emulator: DiscordEmulator, bot: EmulatedBot
) -> None:
    # given no bot yet
    missing = await relay.get("/v1/bot", headers=ACME)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "no_bot")
    # when the tenant sets one
    put = await relay.put("/v1/bot", json={"token": bot.token, "dm_fallback": True}, headers=ACME)
    # then Discord was asked with the bot's token, and the answer names the bot, not the token
    assert put.status_code == 200, put.text
    shown = {"id": bot.id, "username": "relay-bot", "dm_fallback": True, "source": "api"}
    assert put.json() == shown
    assert emulator.counters.bot_requests == {GET_CURRENT_USER: 1}
    assert (await relay.get("/v1/bot", headers=ACME)).json() == shown
    # and another tenant has none
    assert (await relay.get("/v1/bot", headers=OTHER)).status_code == 404
    # when it is set again without dm_fallback, that is off
    again = await relay.put("/v1/bot", json={"token": bot.token}, headers=ACME)
    assert again.json()["dm_fallback"] is False
    # when it is deleted, it is gone, and a second delete says so
    assert (await relay.delete("/v1/bot", headers=ACME)).status_code == 204
    assert (await relay.get("/v1/bot", headers=ACME)).status_code == 404
    gone = await relay.delete("/v1/bot", headers=ACME)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "no_bot")


async def test_a_token_discord_refuses_is_not_kept(
    relay: httpx.AsyncClient, emulator: DiscordEmulator, bot: EmulatedBot
) -> None:
    # when the tenant sets a token Discord does not know
    put = await relay.put("/v1/bot", json={"token": REFUSED_TOKEN}, headers=ACME)
    # then the refusal carries Discord's reason, and nothing was stored
    assert put.status_code == 422
    error = put.json()["error"]
    assert error["code"] == "bot_token_refused"
    assert "401: Unauthorized" in error["message"]
    assert (await relay.get("/v1/bot", headers=ACME)).status_code == 404


async def test_a_token_discord_cannot_check_now_is_not_kept(
    relay: httpx.AsyncClient, emulator: DiscordEmulator, bot: EmulatedBot
) -> None:
    emulator.inject_fault("503")
    put = await relay.put("/v1/bot", json={"token": bot.token}, headers=ACME)
    assert put.status_code == 503
    assert put.json()["error"]["code"] == "discord_unavailable"
    assert (await relay.get("/v1/bot", headers=ACME)).status_code == 404


@pytest.mark.parametrize(
    "token",
    ["short.token", REFUSED_TOKEN + "\n", REFUSED_TOKEN.replace(".", " "), "x" * 201, 12345],
)
async def test_a_malformed_token_never_reaches_discord_nor_the_answer(
    relay: httpx.AsyncClient, emulator: DiscordEmulator, bot: EmulatedBot, token: str | int
) -> None:
    put = await relay.put("/v1/bot", json={"token": token}, headers=ACME)
    assert put.status_code == 422
    assert put.json()["error"]["code"] == "invalid_bot_token"
    assert str(token).strip()[:20] not in put.text
    assert emulator.counters.bot_requests == {}


async def test_a_result_naming_only_a_channel_needs_the_tenants_bot(
    relay: httpx.AsyncClient, bot: EmulatedBot
) -> None:
    # given no bot: a result whose only target is a channel is refused, and not kept
    refused = await relay.post("/v1/results", json=to_channel("wf_channel"), headers=ACME)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "no_bot"
    assert (await relay.get("/v1/results/wf_channel", headers=ACME)).status_code == 404
    # beside a webhook, the channel is only a fallback: accepted without a bot
    beside = submission(
        "wf_beside",
        destination={
            "webhook_url": submission()["destination"]["webhook_url"],
            "channel_id": CHANNEL_ID,
        },
    )
    accepted = await relay.post("/v1/results", json=beside, headers=ACME)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["destination"]["channel_id"] == CHANNEL_ID
    # given a bot: the channel alone is taken, with its dm_fallback, and reads back
    await relay.put("/v1/bot", json={"token": bot.token}, headers=ACME)
    body = to_channel("wf_channel", dm_fallback=True)
    created = await relay.post("/v1/results", json=body, headers=ACME)
    assert created.status_code == 202, created.text
    record = (await relay.get("/v1/results/wf_channel", headers=ACME)).json()
    assert record["destination"] == {
        "name": None,
        "webhook_id": None,
        "thread_id": None,
        "channel_id": CHANNEL_ID,
    }
    assert record["dm_fallback"] is True
    assert record["requester"]["user_id"] == USER_ID
    listed = (await relay.get("/v1/results", headers=ACME)).json()["items"]
    assert {r["workflow_id"]: r["destination"]["channel_id"] for r in listed} == {
        "wf_channel": CHANNEL_ID,
        "wf_beside": CHANNEL_ID,
    }


@pytest.mark.parametrize(
    ("destination", "rule"),
    [
        ({}, "invalid_destination"),
        ({"channel_id": "123"}, "invalid_snowflake"),
        ({"channel_id": CHANNEL_ID, "thread_id": CHANNEL_ID}, "invalid_destination"),
        (
            {"name": "ops", "webhook_url": submission()["destination"]["webhook_url"]},
            "invalid_destination",
        ),
    ],
)
async def test_a_destination_that_names_no_usable_target_is_refused(
    relay: httpx.AsyncClient, destination: dict[str, Any], rule: str
) -> None:
    response = await relay.post(
        "/v1/results", json=submission("wf", destination=destination), headers=ACME
    )
    assert response.status_code == 422
    assert rule in {d["code"] for d in response.json()["error"]["details"]}


async def test_runs_and_redelivery_take_webhooks_only(
    relay: httpx.AsyncClient, bot: EmulatedBot
) -> None:
    # a run naming a channel is refused with its own code
    run = {"workflow_id": "run_channel", "destination": {"channel_id": CHANNEL_ID}}
    started = await relay.post("/v1/runs", json=run, headers=ACME)
    assert started.status_code == 422
    assert started.json()["error"]["code"] == "unsupported_destination"
    # and so is a redelivery to a channel; the result keeps its own
    await relay.put("/v1/bot", json={"token": bot.token}, headers=ACME)
    assert (await relay.post("/v1/results", json=to_channel("wf"), headers=ACME)).status_code == 202
    moved = await relay.post(
        "/v1/results/wf/redeliver",
        json={"destination": {"channel_id": "556677889900112234"}},
        headers=ACME,
    )
    assert moved.status_code == 422
    assert moved.json()["error"]["code"] == "unsupported_destination"
    again = await relay.post("/v1/results/wf/redeliver", headers=ACME)
    assert again.status_code == 202, again.text
    assert again.json()["destination"]["channel_id"] == CHANNEL_ID


async def test_configured_bots_are_checked_at_start_and_left_to_the_operator(
    settings: Settings,
    clock: Clock,
    emulator: DiscordEmulator,
    bot: EmulatedBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given RELAY_bot.tokenS with a good token for acme (DMs allowed) and a refused one
    configured = with_bots(settings, f"acme:{bot.token}:dm,other:{REFUSED_TOKEN}")
    caplog.set_level(logging.INFO)
    async with running(configured, clock, emulator) as relay:
        # then acme's bot is there, from the configuration, and the API leaves it alone
        shown = (await relay.get("/v1/bot", headers=ACME)).json()
        assert shown == {
            "id": bot.id,
            "username": "relay-bot",
            "dm_fallback": True,
            "source": "config",
        }
        put = await relay.put("/v1/bot", json={"token": bot.token}, headers=ACME)
        assert (put.status_code, put.json()["error"]["code"]) == (409, "bot_configured")
        assert (await relay.delete("/v1/bot", headers=ACME)).status_code == 409
        # and the tenant whose token Discord refused has none, and a warning names it
        assert (await relay.get("/v1/bot", headers=OTHER)).status_code == 404
    refusals = [r for r in caplog.records if "refused the bot token" in r.getMessage()]
    assert [getattr(r, "tenant", None) for r in refusals] == ["other"]
    assert_no_token_in(_logged(caplog), bot.token, REFUSED_TOKEN)

    # when it starts again with Discord failing and acme's entry gone
    emulator.inject_fault("503")
    unchecked = with_bots(settings, f"other:{bot.token}")
    async with running(unchecked, clock, emulator) as relay:
        # then acme's configured bot is removed, and other's is used unchecked
        assert (await relay.get("/v1/bot", headers=ACME)).status_code == 404
        shown = (await relay.get("/v1/bot", headers=OTHER)).json()
        assert shown == {"id": None, "username": None, "dm_fallback": False, "source": "config"}


def with_bots(settings: Settings, bot_tokens: str) -> Settings:
    """``settings`` with ``RELAY_bot.tokenS`` set to ``bot_tokens``."""
    return load_settings(
        database_url=settings.database_url,
        api_keys=API_KEYS,
        secret_key=SECRET_KEY,
        bot_tokens=bot_tokens,
    )


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as the service writes it (JSON, with its extra fields)."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


def assert_no_token_in(text: str, *tokens: str) -> None:
    for token in tokens:
        for piece in (token, token[:20], token[-20:]):
            assert piece not in text, "a bot token leaked"


async def test_no_bot_token_reaches_a_log_an_answer_or_a_metric(
    relay: httpx.AsyncClient,
    emulator: DiscordEmulator,
    bot: EmulatedBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []

    async def call(method: str, path: str, **kw: Any) -> httpx.Response:
        response = await relay.request(method, path, headers=ACME, **kw)
        answers.append(f"{response.status_code} {response.headers} {response.text}")
        return response

    # given a bot set with a recognisable token, and refusals of every kind on the way
    assert (await call("PUT", "/v1/bot", json={"token": REFUSED_TOKEN})).status_code == 422
    await call("PUT", "/v1/bot", json={"token": bot.token + "!"})
    await call("PUT", "/v1/bot", json={"token": bot.token, "extra": bot.token})
    await call("PUT", "/v1/bot", content=f'{{"token": "{bot.token}"')  # cut short
    emulator.inject_fault("503")
    assert (await call("PUT", "/v1/bot", json={"token": bot.token})).status_code == 503
    assert (await call("PUT", "/v1/bot", json={"token": bot.token})).status_code == 200
    # when it is read, results name its channel, and the bot is deleted
    await call("GET", "/v1/bot")
    await call("POST", "/v1/results", json=to_channel("wf_leak"))
    await call("GET", "/v1/results/wf_leak")
    await call("GET", "/v1/results")
    await call("DELETE", "/v1/bot")
    await call("POST", "/v1/results", json=to_channel("wf_leak_2"))
    metrics = (await relay.get("/metrics")).text
    # (the premise: the requests were logged and counted, refusals included)
    logged = _logged(caplog)
    assert "/v1/bot" in logged and "bot_token_refused" in logged
    assert 'code="bot_token_refused"' in metrics
    # then no answer, no log line and no metric holds any of the tokens
    assert_no_token_in("\n".join(answers), bot.token, REFUSED_TOKEN)
    assert_no_token_in(logged, bot.token, REFUSED_TOKEN)
    assert_no_token_in(metrics, bot.token, REFUSED_TOKEN)


async def test_an_unanswered_check_keeps_what_an_earlier_check_of_the_same_token_found(
    sqlite_store: SQLiteStore, emulator: DiscordEmulator, bot: EmulatedBot
) -> None:
    client = make_discord_client(httpx.ASGITransport(app=emulator.app))
    sender = BotSender(client, api_base=load_settings(secret_key=SECRET_KEY).discord_api_base)

    async def sync(value: str) -> BotConfig | None:
        configured = load_settings(secret_key=SECRET_KEY, bot_tokens=value).bot_tokens
        await sync_configured_bots(sqlite_store, sender, configured, now=1.0)
        return await sqlite_store.get_bot("acme")

    try:
        # given a configured token Discord accepted at one start
        checked = await sync(f"acme:{bot.token}")
        assert checked is not None and (checked.bot_id, checked.username) == (bot.id, "relay-bot")
        # when Discord does not answer at the next start, the same token keeps what was found
        emulator.inject_fault("503")
        again = await sync(f"acme:{bot.token}:dm")
        assert again is not None and (again.bot_id, again.dm_fallback) == (bot.id, True)
        # and another token is used unchecked, knowing nothing of its bot
        other = emulator.create_bot(username="other-bot")
        emulator.inject_fault("503")
        unchecked = await sync(f"acme:{other.token}")
        assert unchecked is not None and unchecked.token == other.token
        assert (unchecked.bot_id, unchecked.username, unchecked.source) == ("", "", "config")
    finally:
        await client.aclose()
