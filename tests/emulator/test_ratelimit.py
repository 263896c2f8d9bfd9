"""Rate limits over HTTP: headers, the three kinds of 429, premature retries, invalid requests."""

from __future__ import annotations

import math

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedWebhook
from tests.emulator.support import WALL_START, FakeClock, body, followup_path, hook_path

RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)


async def post(
    http: httpx.AsyncClient, webhook: EmulatedWebhook, text: str = "x"
) -> httpx.Response:
    return await http.post(hook_path(webhook), json=body(content=text))


async def test_every_answer_carries_the_bucket_headers(
    discord: httpx.AsyncClient, webhook: EmulatedWebhook
) -> None:
    response = await post(discord, webhook)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"
    assert response.headers["X-RateLimit-Reset-After"] == "2.000"
    assert float(response.headers["X-RateLimit-Reset"]) == pytest.approx(WALL_START + 2.0)
    assert len(response.headers["X-RateLimit-Bucket"]) == 32
    refused = await discord.post(hook_path(webhook), json=body(content="x" * 2001))
    assert all(h in refused.headers for h in RATE_HEADERS)


async def test_bucket_hash_is_shared_by_webhooks_but_buckets_are_not(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    other = emulator.create_webhook()
    first = await post(discord, webhook)
    second = await post(discord, other)
    assert first.headers["X-RateLimit-Bucket"] == second.headers["X-RateLimit-Bucket"]
    assert second.headers["X-RateLimit-Remaining"] == "4"


async def test_sixth_request_in_two_seconds_is_refused_with_a_user_429(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    # given five posts spread over 1.5 seconds
    for i in range(5):
        assert (await post(discord, webhook, f"m{i}")).status_code == 200
        mono.now += 0.3
    # when a sixth arrives inside the window
    response = await post(discord, webhook, "m5")
    # then it is refused as Discord does, and nothing is stored
    assert response.status_code == 429
    retry_after = response.json()["retry_after"]
    assert response.json() == {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": False,
    }
    assert retry_after == pytest.approx(0.5)
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Scope"] == "user"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Global" not in response.headers
    assert len(emulator.messages(webhook.id)) == 5
    counters = emulator.counters
    assert counters.rate_limited["user"] == 1
    assert counters.invalid_requests_10min == 1
    assert counters.premature_requests == 1  # Remaining 0 had been announced


async def test_waiting_the_announced_reset_after_is_never_premature(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    for _ in range(5):
        last = await post(discord, webhook)
    assert last.headers["X-RateLimit-Remaining"] == "0"
    mono.now += float(last.headers["X-RateLimit-Reset-After"])
    response = await post(discord, webhook)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "4"
    assert emulator.counters.premature_requests == 0


async def test_retry_before_retry_after_is_counted_premature(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    emulator.set_limits(webhook=(1, 10.0))
    await post(discord, webhook)
    mono.now += 9.0
    assert (await post(discord, webhook)).status_code == 429
    mono.now += 0.5
    assert (await post(discord, webhook)).status_code == 429
    mono.now += 0.5
    assert (await post(discord, webhook)).status_code == 200
    assert emulator.counters.premature_requests == 2


async def test_channel_limit_answers_a_shared_429_while_headers_show_room(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, mono: FakeClock
) -> None:
    # given two webhooks on one channel and a channel limit of 3 per minute
    emulator.set_limits(channel=(3, 60.0))
    first = emulator.create_webhook(channel_id="1200000000000000001")
    second = emulator.create_webhook(channel_id="1200000000000000001")
    for hook in (first, first, second):
        assert (await post(discord, hook)).status_code == 200
    mono.now += 10.0
    # when a fourth message goes to the channel
    response = await post(discord, second)
    # then Discord answers with a long shared 429, although the bucket has room
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Scope"] == "shared"
    assert int(response.headers["X-RateLimit-Remaining"]) > 0
    assert response.json()["retry_after"] == pytest.approx(50.0)
    assert response.json()["global"] is False
    assert response.headers["Retry-After"] == "50"
    counters = emulator.counters
    assert counters.rate_limited["shared"] == 1
    assert counters.invalid_requests_10min == 0  # shared 429s do not count toward a ban
    # and a retry before the retry_after is premature
    mono.now += 10.0
    await post(discord, second)
    assert emulator.counters.premature_requests == 1


async def test_channel_limit_counts_each_thread_as_its_own_channel(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.set_limits(channel=(1, 60.0))
    thread_id = emulator.create_thread(webhook.id)
    assert (await post(discord, webhook)).status_code == 200
    in_thread = await discord.post(
        hook_path(webhook, query=f"wait=true&thread_id={thread_id}"), json=body(content="t")
    )
    assert in_thread.status_code == 200


async def test_global_limit_answers_a_global_429(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, mono: FakeClock
) -> None:
    emulator.set_limits(global_=(3, 1.0))
    hooks = [emulator.create_webhook() for _ in range(4)]
    for hook in hooks[:3]:
        assert (await post(discord, hook)).status_code == 200
    mono.now += 0.25
    response = await post(discord, hooks[3])
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Global"] == "true"
    assert response.headers["X-RateLimit-Scope"] == "global"
    assert response.json()["global"] is True
    assert response.json()["retry_after"] == pytest.approx(0.75)
    assert emulator.counters.rate_limited["global"] == 1
    mono.now += 0.75
    assert (await post(discord, hooks[3])).status_code == 200


async def test_interaction_follow_ups_do_not_count_toward_the_global_limit(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.set_limits(global_=(1, 1.0))
    interaction = emulator.create_interaction()
    assert (await post(discord, webhook)).status_code == 200
    followup = await discord.post(followup_path(interaction), json=body(content="f"))
    assert followup.status_code == 200
    assert emulator.counters.rate_limited["global"] == 0


async def test_unversioned_calls_get_retry_after_in_milliseconds(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.set_limits(webhook=(1, 2.0))
    await post(discord, webhook)
    response = await discord.post(hook_path(webhook, version=""), json=body(content="x"))
    assert response.status_code == 429
    assert response.json()["retry_after"] == 2000
    assert emulator.counters.unversioned_requests == 1


async def test_invalid_request_count_rolls_over_ten_minutes(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    wrong = EmulatedWebhook(webhook.id, "W" * 68, webhook.channel_id, webhook.guild_id)
    await post(discord, wrong)
    mono.now += 300
    await post(discord, wrong)
    assert emulator.counters.invalid_requests_10min == 2
    mono.now += 301
    assert emulator.counters.invalid_requests_10min == 1


async def test_too_many_invalid_requests_get_a_cloudflare_ban(
    mono: FakeClock, wall: FakeClock
) -> None:
    # given an emulator whose ban threshold is 3 invalid requests
    emulator = DiscordEmulator(clock=mono, wall_clock=wall, invalid_request_limit=3)
    webhook = emulator.create_webhook()
    wrong = EmulatedWebhook(webhook.id, "W" * 68, webhook.channel_id, webhook.guild_id)
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://discord.com") as http:
        for _ in range(3):
            assert (await post(http, wrong)).status_code == 401
        # when even a valid request follows
        banned = await post(http, webhook)
        mono.now += 3600
        after = await post(http, webhook)
    # then it meets Cloudflare's 1015 page until the hour is over
    assert banned.status_code == 429
    assert "error code: 1015" in banned.text
    assert not any(h.lower().startswith("x-ratelimit") for h in banned.headers)
    assert after.status_code == 200
    assert emulator.counters.cloudflare_bans == 1


async def test_set_limits_applies_at_once(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    emulator.set_limits(webhook=(2, 5.0))
    assert emulator.limits["webhook"] == (2, 5.0)
    first = await post(discord, webhook)
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Reset-After"] == "5.000"
    with pytest.raises(ValueError):
        emulator.set_limits(channel=(0, 1.0))


async def test_message_edits_take_from_the_webhooks_execute_bucket(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook
) -> None:
    # given an execute bucket that one post used up
    emulator.set_limits(webhook=(1, 10.0))
    posted = await post(discord, webhook)
    path = f"/api/v10/webhooks/{webhook.id}/{webhook.token}/messages/{posted.json()['id']}"
    # when the message is edited at once
    edit = await discord.patch(path, json=body(content="edited"))
    # then the edit is refused from the same bucket, and the message keeps its text
    assert edit.status_code == 429
    assert edit.headers["X-RateLimit-Bucket"] == posted.headers["X-RateLimit-Bucket"]
    assert emulator.messages(webhook.id)[0].content == "x"
    assert emulator.counters.edits == 0


async def test_retry_after_header_is_whole_seconds_rounded_up(
    discord: httpx.AsyncClient, emulator: DiscordEmulator, webhook: EmulatedWebhook, mono: FakeClock
) -> None:
    emulator.set_limits(webhook=(1, 2.0))
    await post(discord, webhook)
    mono.now += 0.9
    response = await post(discord, webhook)
    assert response.json()["retry_after"] == pytest.approx(1.1)
    assert response.headers["Retry-After"] == str(math.ceil(1.1))
