"""Delivery against the Discord emulator: what Discord received and what the store holds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from service.api.deps import Services
from service.delivery.worker import Worker
from service.testing import DiscordEmulator, EmulatedWebhook
from tests.conftest import Clock
from tests.support import ACME, USER_ID, submission


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/results", json=body, headers=ACME)
    assert response.status_code == 202, response.text
    record: dict[str, Any] = response.json()
    return record


async def fetch(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/results/{workflow_id}", headers=ACME)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def attempts(client: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/results/{workflow_id}/attempts", headers=ACME)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def to(hook: EmulatedWebhook, workflow_id: str, **overrides: Any) -> dict[str, Any]:
    return submission(workflow_id, destination={"webhook_url": hook.url}, **overrides)


def assert_discord_saw_no_misbehaviour(emulator: DiscordEmulator) -> None:
    counters = emulator.counters
    assert counters.payload_400s == 0
    assert counters.payload_413s == 0
    assert counters.premature_requests == 0
    assert counters.requests_after_404 == 0
    assert counters.bad_allowed_mentions == 0
    assert counters.bad_user_agent == 0
    assert counters.unversioned_requests == 0


async def test_result_is_delivered_with_its_message_id_stored(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a result for a channel webhook
    hook = emulator.create_webhook()
    await submit(client, to(hook, "wf_1"))
    # when the worker runs
    await worker.drain()
    # then Discord received one message and the store holds its id
    [message] = emulator.messages(hook.id)
    record = await fetch(client, "wf_1")
    assert record["status"] == "delivered"
    assert record["messages"][0]["message_id"] == message.id
    assert record["messages"][0]["route"] == "webhook"
    assert record["delivered_at"] is not None
    assert message.embeds[0]["footer"]["text"].endswith("wf_1")
    assert message.content is not None and message.content.startswith(f"<@{USER_ID}>")
    assert message.allowed_mentions == {"parse": [], "users": [USER_ID]}
    [attempt] = await attempts(client, "wf_1")
    assert (attempt["outcome"], attempt["http_status"], attempt["counted"]) == (
        "delivered",
        200,
        False,
    )
    assert_discord_saw_no_misbehaviour(emulator)


async def test_large_result_goes_with_attachments_and_nothing_is_refused(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    results = {"summary": "long " * 2000, "transcript": "x" * 200_000, "scores": [1, 2, 3]}
    message = {"content": "Paragraph.\n\n" * 400, "embeds": [{"title": "t" * 300}] * 12}
    await submit(client, to(hook, "wf_big", results=results, message=message))
    await worker.drain()
    received = emulator.messages(hook.id)
    assert len(received) > 1
    files = {a.filename: a.data for m in received for a in m.attachments}
    assert json.loads(files["results-wf_big.json"]) == results
    record = await fetch(client, "wf_big")
    assert record["status"] == "delivered"
    assert [m["part"] for m in record["messages"]] == list(range(len(received)))
    assert_discord_saw_no_misbehaviour(emulator)


async def test_a_huge_message_arrives_as_at_most_max_parts_messages_with_the_rest_attached(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a bot message that would once have become some 280 Discord messages
    hook = emulator.create_webhook()
    content = "\n".join(f"line {i} " + "text " * 60 for i in range(1700))
    embeds = [{"title": f"embed {i}", "description": "d" * 50} for i in range(100)]
    await submit(client, to(hook, "wf_huge", message={"content": content, "embeds": embeds}))
    # when the worker delivers it (RELAY_MAX_PARTS is 10 by default)
    await worker.drain()
    # then Discord received ten messages, the last saying where the rest is, with the whole
    # message attached; the store holds ten delivered parts
    received = emulator.messages(hook.id)
    assert len(received) == 10
    files = {a.filename: a.data for m in received for a in m.attachments}
    copy = files["content-wf_huge.md"].decode()
    assert copy.startswith(content) and copy.count("## Embed ") == 100
    assert "attached as content-wf_huge.md" in (received[-1].content or "")
    record = await fetch(client, "wf_huge")
    assert record["status"] == "delivered"
    assert [m["part"] for m in record["messages"]] == list(range(10))
    assert_discord_saw_no_misbehaviour(emulator)


async def test_transient_errors_are_retried_then_delivered(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    hook = emulator.create_webhook()
    emulator.inject_fault("500", webhook_id=hook.id, count=1)
    emulator.inject_fault("502_html", webhook_id=hook.id, count=1)
    await submit(client, to(hook, "wf_r"))
    await worker.drain()
    waiting = await fetch(client, "wf_r")
    assert (waiting["status"], waiting["attempts"], waiting["counted_attempts"]) == (
        "pending",
        1,
        1,
    )
    assert waiting["last_error"].startswith("HTTP 500")
    for _ in range(2):
        clock.advance(600)  # past any backoff
        await worker.drain()
    record = await fetch(client, "wf_r")
    assert record["status"] == "delivered"
    assert [a["http_status"] for a in await attempts(client, "wf_r")] == [500, 502, 200]
    assert len(emulator.messages(hook.id)) == 1


async def test_a_result_waiting_to_retry_does_not_block_its_lane(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    emulator.inject_fault("503", webhook_id=hook.id, count=1)
    await submit(client, to(hook, "first"))
    await submit(client, to(hook, "second"))
    await worker.drain()
    assert (await fetch(client, "first"))["status"] == "pending"
    assert (await fetch(client, "second"))["status"] == "delivered"


async def test_attempts_run_out_and_the_result_is_orphaned(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock,
    services: Services,
) -> None:  # fmt: skip
    hook = emulator.create_webhook()
    emulator.inject_fault("500", webhook_id=hook.id, count=100)
    await submit(client, to(hook, "wf_x"))
    for _ in range(services.settings.max_attempts):
        await worker.drain()
        clock.advance(601)
    record = await fetch(client, "wf_x")
    assert record["status"] == "orphaned"
    assert record["retrieval_info"]["reason"] == "attempts_exhausted"
    assert record["counted_attempts"] == services.settings.max_attempts
    assert record["attempts"] == len(await attempts(client, "wf_x"))
    assert record["results"]["summary"] == "All clear"


async def test_dead_webhook_orphans_its_results_at_once(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given three results for a webhook that was deleted in Discord
    hook = emulator.create_webhook()
    for i in range(3):
        await submit(client, to(hook, f"wf_{i}"))
    emulator.delete_webhook(hook.id)
    # when the worker tries
    await worker.drain()
    # then one call found it dead and every result is orphaned with the reason
    for i in range(3):
        record = await fetch(client, f"wf_{i}")
        assert record["status"] == "orphaned"
        assert record["retrieval_info"]["reason"] == "webhook_deleted"
    assert emulator.counters.requests_after_404 == 0
    # and a new result for it is accepted already orphaned, and never sent
    late = await submit(client, to(hook, "wf_late"))
    assert (late["status"], late["retrieval_info"]["reason"]) == ("orphaned", "webhook_deleted")
    await worker.drain()
    assert emulator.counters.requests_after_404 == 0


async def test_rate_limits_are_respected_without_premature_requests(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    emulator.set_limits(webhook=(2, 0.3))
    hook = emulator.create_webhook()
    for i in range(7):
        await submit(client, to(hook, f"wf_{i}"))
    await worker.drain()
    assert len(emulator.messages(hook.id)) == 7
    assert emulator.counters.rate_limited.get("user", 0) == 0
    assert_discord_saw_no_misbehaviour(emulator)
    # parts of different results never interleave out of order
    ids = [m.embeds[0]["footer"]["text"] for m in emulator.messages(hook.id)]
    assert ids == [f"workflow wf_{i}" for i in range(7)]


async def test_a_global_429_pauses_everything_and_nothing_is_premature(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    emulator.set_limits(global_=(3, 0.5))
    hooks = [emulator.create_webhook() for _ in range(3)]
    for i in range(8):
        await submit(client, to(hooks[i % 3], f"wf_{i}"))
    await worker.drain()
    assert sum(len(emulator.messages(h.id)) for h in hooks) == 8
    # Nothing is sent during a pause. Requests of the other lanes already on their way when a
    # 429 came meet the closed window too, and arrive before the reset through no fault of the
    # worker (seen on a loaded machine): at most one per other lane, per window.
    global_429s = emulator.counters.rate_limited.get("global", 0)
    assert global_429s <= 2 * len(hooks)
    assert emulator.counters.premature_requests <= (len(hooks) - 1) * global_429s


async def test_shared_429_waits_for_that_lane(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    emulator.set_limits(channel=(2, 0.4))
    hook = emulator.create_webhook()
    for i in range(4):
        await submit(client, to(hook, f"wf_{i}"))
    await worker.drain()
    assert len(emulator.messages(hook.id)) == 4
    assert emulator.counters.premature_requests == 0
    history = await attempts(client, "wf_2")
    assert history[0]["http_status"] == 429 and history[0]["counted"] is False
    # every attempt is counted in the record, but the 429 used up none of the retry budget
    record = await fetch(client, "wf_2")
    assert (record["attempts"], record["counted_attempts"]) == (len(history), 0)


async def test_valid_interaction_gets_a_follow_up(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=600)
    body = to(hook, "wf_i", interaction=_interaction(interaction))
    await submit(client, body)
    await worker.drain()
    [followup] = emulator.followups(interaction.interaction_id)
    assert emulator.messages(hook.id) == []
    # the one rendering every route shares: the requester is mentioned, nobody else
    assert followup.allowed_mentions == {"parse": [], "users": [USER_ID]}
    record = await fetch(client, "wf_i")
    assert record["messages"][0]["route"] == "interaction"


async def test_expired_interaction_is_never_tried(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, app: Any
) -> None:
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=850)  # 50 s left, inside the margin
    await submit(client, to(hook, "wf_e", interaction=_interaction(interaction)))
    await worker.drain()
    assert emulator.followups(interaction.interaction_id) == []
    assert len(emulator.messages(hook.id)) == 1
    assert emulator.counters.invalid_requests_10min == 0
    metrics = app.state.services.metrics.registry
    assert (
        metrics.get_sample_value("discord_session_closed_total", {"stage": "expired_before_send"})
        == 1
    )


async def test_refused_interaction_falls_back_to_the_channel_webhook_at_once(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=60)
    forged = {**_interaction(interaction), "token": "aW50ZXJhY3Rpb24" + "z" * 80}
    await submit(client, to(hook, "wf_f", interaction=forged))
    await worker.drain()
    assert len(emulator.messages(hook.id)) == 1
    record = await fetch(client, "wf_f")
    assert (record["status"], record["attempts"], record["counted_attempts"]) == ("delivered", 2, 0)
    outcomes = [(a["route"], a["outcome"]) for a in await attempts(client, "wf_f")]
    assert outcomes == [("interaction", "fallback"), ("webhook", "delivered")]


async def test_expired_interaction_without_a_webhook_is_orphaned(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    interaction = emulator.create_interaction(age_seconds=1200)
    body = submission("wf_o", interaction=_interaction(interaction))
    body.pop("destination")
    await submit(client, body)
    await worker.drain()
    record = await fetch(client, "wf_o")
    assert (record["status"], record["retrieval_info"]["reason"]) == (
        "orphaned",
        "interaction_expired",
    )
    assert emulator.counters.total_requests == 0


async def test_everyone_in_results_pings_nobody(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    results = {"summary": "@everyone @here <@&123456789012345678> look"}
    message = {"content": "@everyone results are in <@&123456789012345678>"}
    await submit(client, to(hook, "wf_p", results=results, message=message))
    await worker.drain()
    [sent] = emulator.messages(hook.id)
    assert sent.allowed_mentions == {"parse": [], "users": [USER_ID]}
    assert "@everyone" in (sent.content or "")
    assert emulator.counters.bad_allowed_mentions == 0


async def test_unknown_thread_is_a_refusal_that_names_itself(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    body = submission(
        "wf_t", destination={"webhook_url": hook.url, "thread_id": "223344556677889900"}
    )
    await submit(client, body)
    await worker.drain()
    record = await fetch(client, "wf_t")
    assert record["status"] == "orphaned"
    # "not here" moves on to the next route; with no bot there is none, and the reason says why
    assert record["retrieval_info"]["reason"] == "unknown_channel"


async def test_redeliver_sends_again_to_another_destination(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    dead, alive = emulator.create_webhook(), emulator.create_webhook()
    await submit(client, to(dead, "wf_rd"))
    emulator.delete_webhook(dead.id)
    await worker.drain()
    assert (await fetch(client, "wf_rd"))["status"] == "orphaned"
    same = await client.post("/v1/results/wf_rd/redeliver", headers=ACME)
    assert same.status_code == 409 and same.json()["error"]["code"] == "destination_dead"
    moved = await client.post(
        "/v1/results/wf_rd/redeliver",
        json={"destination": {"webhook_url": alive.url}},
        headers=ACME,
    )
    assert moved.status_code == 202
    await worker.drain()
    assert len(emulator.messages(alive.id)) == 1
    assert (await fetch(client, "wf_rd"))["status"] == "delivered"
    missing = await client.post("/v1/results/nope/redeliver", headers=ACME)
    assert missing.status_code == 404


async def test_named_destinations_are_checked_with_discord(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    put = await client.put("/v1/destinations/ops", json={"webhook_url": hook.url}, headers=ACME)
    assert put.status_code == 201
    assert put.json() == {"name": "ops", "webhook_id": hook.id, "thread_id": None}
    again = await client.put("/v1/destinations/ops", json={"webhook_url": hook.url}, headers=ACME)
    assert again.status_code == 200
    listing = await client.get("/v1/destinations", headers=ACME)
    assert hook.token not in listing.text and listing.json()["items"][0]["name"] == "ops"
    await submit(client, submission("wf_n", destination={"name": "ops"}))
    await worker.drain()
    assert len(emulator.messages(hook.id)) == 1
    assert emulator.messages(hook.id)[0].payload  # the check itself posted nothing
    gone = emulator.create_webhook()
    emulator.delete_webhook(gone.id)
    refused = await client.put("/v1/destinations/x", json={"webhook_url": gone.url}, headers=ACME)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "webhook_not_found"
    assert (await client.delete("/v1/destinations/ops", headers=ACME)).status_code == 204
    assert (await client.get("/v1/destinations/ops", headers=ACME)).status_code == 404


async def test_delivery_metrics(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, app: Any
) -> None:
    hook = emulator.create_webhook()
    await submit(client, to(hook, "m1"))
    emulator.inject_fault("500", webhook_id=hook.id)
    await submit(client, to(hook, "m2"))
    await worker.drain()
    text = (await client.get("/metrics")).text
    assert 'relay_deliveries_total{outcome="delivered",route="webhook"} 1.0' in text
    assert 'relay_delivery_attempts_total{status_class="2xx"} 1.0' in text
    assert 'relay_delivery_attempts_total{status_class="5xx"} 1.0' in text
    assert "relay_accept_to_delivered_seconds_count 1.0" in text
    assert hook.token not in text


def _interaction(interaction: Any) -> dict[str, str]:
    return {
        "application_id": interaction.application_id,
        "interaction_id": interaction.interaction_id,
        "token": interaction.token,
    }


@pytest.fixture(autouse=True)
def _quiet_emulator(emulator: DiscordEmulator) -> None:
    emulator.load_schema()  # compile Discord's schema before timing-sensitive tests begin


async def test_a_result_deleted_while_in_flight_does_not_stall_its_lane(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    hook = emulator.create_webhook()
    emulator.inject_fault("hang_after_store", webhook_id=hook.id, seconds=0.3)
    await submit(client, to(hook, "wf_gone"))
    await submit(client, to(hook, "wf_next"))
    drain = asyncio.create_task(worker.drain())
    while emulator.counters.total_requests == 0:
        await asyncio.sleep(0.01)
    assert (await client.delete("/v1/results/wf_gone", headers=ACME)).status_code == 204
    await drain
    assert (await fetch(client, "wf_next"))["status"] == "delivered"
    assert "lane task crashed" not in caplog.text


async def test_an_unexpected_error_keeps_the_result_as_orphaned(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    hook = emulator.create_webhook()
    await submit(client, to(hook, "wf_bug"))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a rendering bug")

    monkeypatch.setattr("service.delivery.worker.render_result", broken)
    await worker.drain()
    record = await fetch(client, "wf_bug")
    assert (record["status"], record["retrieval_info"]["reason"]) == ("orphaned", "internal_error")
    assert emulator.counters.total_requests == 0
