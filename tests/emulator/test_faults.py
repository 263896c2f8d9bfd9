"""Injected faults: each kind answers the way Discord's edge does on a bad day."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.testing import ConnectionDropped, DiscordEmulator, EmulatedWebhook
from tests.emulator.support import body, hook_path


async def post(http: httpx.AsyncClient, webhook: EmulatedWebhook) -> httpx.Response:
    return await http.post(hook_path(webhook), json=body(content="result"))


async def test_500_fault_answers_500_and_stores_nothing(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("500")
    response = await post(discord, webhook)
    assert response.status_code == 500
    assert response.json()["code"] == 0
    assert emulator.messages(webhook.id) == []
    assert (await post(discord, webhook)).status_code == 200  # consumed after one use


async def test_502_fault_answers_an_html_gateway_page(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("502_html")
    response = await post(discord, webhook)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    assert emulator.messages(webhook.id) == []


async def test_503_fault_carries_retry_after(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("503")
    response = await post(discord, webhook)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert emulator.messages(webhook.id) == []


async def test_cloudflare_429_has_no_discord_headers_and_no_json(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("cloudflare_429")
    response = await post(discord, webhook)
    assert response.status_code == 429
    assert "error code: 1015" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert not any(name.lower().startswith("x-ratelimit") for name in response.headers)
    assert "Retry-After" not in response.headers
    assert emulator.counters.rate_limited["cloudflare"] == 1
    assert emulator.counters.invalid_requests_10min == 1


async def test_hang_fault_answers_late_without_storing(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("hang", seconds=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await post(discord, webhook)
    assert loop.time() - started >= 0.05
    assert response.status_code == 504
    assert emulator.messages(webhook.id) == []


async def test_hang_fault_outlasts_a_client_timeout(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("hang", seconds=5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(post(discord, webhook), timeout=0.05)
    assert emulator.messages(webhook.id) == []


async def test_hang_after_store_keeps_the_message_but_not_the_answer(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a Discord that stores the message and then hangs
    emulator.inject_fault("hang_after_store", seconds=5)
    # when the client gives up waiting
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(post(discord, webhook), timeout=0.05)
    # then the message is there all the same: the ambiguous case
    assert [m.content for m in emulator.messages(webhook.id)] == ["result"]


async def test_drop_fault_cuts_the_connection_without_storing(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("drop")
    with pytest.raises(ConnectionDropped):
        await post(discord, webhook)
    assert emulator.messages(webhook.id) == []


async def test_drop_after_store_cuts_the_connection_after_storing(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("drop_after_store")
    with pytest.raises(ConnectionDropped):
        await post(discord, webhook)
    assert len(emulator.messages(webhook.id)) == 1


async def test_faults_are_consumed_in_order_count_times(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("503", count=2)
    emulator.inject_fault("500")
    statuses = [(await post(discord, webhook)).status_code for _ in range(4)]
    assert statuses == [503, 503, 500, 200]
    assert emulator.pending_faults() == []


async def test_fault_for_one_webhook_leaves_the_others_alone(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    other = emulator.create_webhook()
    emulator.inject_fault("500", webhook_id=webhook.id)
    assert (await post(discord, other)).status_code == 200
    assert (await post(discord, webhook)).status_code == 500


async def test_after_store_fault_waits_for_a_request_that_stores(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given a drop-after-store fault; when the next request is refused for its body
    emulator.inject_fault("drop_after_store")
    refused = await discord.post(hook_path(webhook), json=body(content="x" * 2001))
    assert refused.status_code == 400
    # then the fault still hits the next request that is stored
    with pytest.raises(ConnectionDropped):
        await post(discord, webhook)
    assert emulator.pending_faults() == []


async def test_concurrent_requests_on_one_webhook_are_measured(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.inject_fault("hang_after_store", count=3, seconds=0.05)
    responses = await asyncio.gather(*(post(discord, webhook) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert emulator.counters.max_concurrent_per_webhook == 3


@pytest.mark.parametrize(
    ("kind", "count", "seconds"), [("teapot", 1, None), ("500", 0, None), ("hang", 1, -1.0)]
)
def test_bad_fault_requests_are_refused(
    emulator: DiscordEmulator, kind: str, count: int, seconds: float | None
) -> None:
    with pytest.raises(ValueError):
        emulator.inject_fault(kind, count=count, seconds=seconds)
