"""Runs against the Discord emulator: what Discord received (edits per message, in order) and
what the store holds, with a hand-moved clock and ``worker.drain()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.api.deps import Services
from service.delivery.runs import RunEngine
from service.delivery.turns import Priority
from service.delivery.worker import Worker
from service.discord.outcome import Disposition, SendOutcome
from service.discord.ratelimit import Bucket, RateLimitInfo
from service.testing import DiscordEmulator
from tests.conftest import Clock
from tests.integration.test_delivery import assert_discord_saw_no_misbehaviour
from tests.support import ACME, OTHER, USER_ID

HANDOFF = 720.0  # the default RELAY_HANDOFF_AT_SECONDS


def _interaction(interaction: Any) -> dict[str, str]:
    return {
        "application_id": interaction.application_id,
        "interaction_id": interaction.interaction_id,
        "token": interaction.token,
    }


def run_body(workflow_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow_id": workflow_id,
        "title": "Analysis of a video",
        "url": "https://youtube.com/watch?v=abc",
        "requester": {"user_id": USER_ID},
    }
    body.update(fields)
    return body


async def start(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/runs", json=body, headers=ACME)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def progress(
    client: httpx.AsyncClient, workflow_id: str, stage: str, current: int, total: int = 10
) -> None:
    response = await client.put(
        f"/v1/runs/{workflow_id}/progress",
        json={"stage": stage, "current": current, "total": total},
        headers=ACME,
    )
    assert response.status_code == 202, response.text


async def get_run(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/runs/{workflow_id}", headers=ACME)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def description(payload: dict[str, Any]) -> str:
    text: str = payload["embeds"][0]["description"]
    return text


async def test_progress_edits_the_deferred_response_coalesced_at_most_every_interval(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a run on a fresh interaction
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction()
    await start(
        client,
        run_body(
            "run_1", interaction=_interaction(interaction), destination={"webhook_url": hook.url}
        ),
    )
    # when three updates arrive at once, and one more after the interval
    for i in (1, 2, 3):
        await progress(client, "run_1", "download", i)
    await worker.drain()
    await progress(client, "run_1", "analyse", 4)
    await worker.drain()  # within the interval: nothing yet
    clock.advance(3)
    await worker.drain()
    # then the deferred response was edited twice, showing the latest each time
    edits = emulator.edits(interaction.original_message_id)
    assert len(edits) == 2
    assert "3/10" in description(edits[0].payload) and "4/10" in description(edits[1].payload)
    assert all(e.payload["allowed_mentions"] == {"parse": []} for e in edits)
    assert emulator.messages(hook.id) == []
    run = await get_run(client, "run_1")
    assert run["status"] == "running"
    assert run["progress_message"] == {"route": "interaction", "message_id": None}
    assert run["progress"]["stage"] == "analyse"
    metrics = (await client.get("/metrics")).text
    assert "relay_progress_coalesced_total 2.0" in metrics
    assert_discord_saw_no_misbehaviour(emulator)


async def test_hand_off_edits_the_notice_then_one_channel_message_is_edited_in_place(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a run whose interaction is close to the hand-off time
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=HANDOFF - 10)
    await start(
        client,
        run_body(
            "run_2", interaction=_interaction(interaction), destination={"webhook_url": hook.url}
        ),
    )
    await progress(client, "run_2", "download", 1)
    await worker.drain()
    # when the hand-off time comes, and progress goes on after it
    clock.advance(10)
    await worker.drain()
    await progress(client, "run_2", "analyse", 5)
    clock.advance(3)
    await worker.drain()
    await progress(client, "run_2", "analyse", 6)
    clock.advance(3)
    await worker.drain()
    # then the deferred response shows the notice, and one channel message was edited twice
    original = emulator.edits(interaction.original_message_id)
    assert len(original) == 2
    assert "/retrieve_results workflow_id:run_2" in description(original[-1].payload)
    [channel] = emulator.messages(hook.id)
    edits = emulator.edits(channel.id)
    assert [
        ("5/10" in description(e.payload), "6/10" in description(e.payload)) for e in edits
    ] == [
        (True, False),
        (False, True),
    ]
    run = await get_run(client, "run_2")
    assert run["status"] == "handed_off"
    assert run["progress_message"] == {"route": "webhook", "message_id": channel.id}
    assert run["handoff_at"] is not None and run["token_expires_at"] is not None
    assert "relay_run_handoffs_total 1.0" in (await client.get("/metrics")).text
    assert_discord_saw_no_misbehaviour(emulator)


async def test_a_run_without_interaction_starts_in_the_channel_and_finishes_there(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a run with only a channel webhook, with some progress
    hook = emulator.create_webhook()
    await start(client, run_body("run_3", destination={"webhook_url": hook.url}))
    await worker.drain()
    await progress(client, "run_3", "analyse", 9)
    clock.advance(3)
    await worker.drain()
    # when its result arrives without saying where it goes
    response = await client.post(
        "/v1/results", json={"workflow_id": "run_3", "results": {"summary": "ok"}}, headers=ACME
    )
    assert response.status_code == 202, response.text
    await worker.drain()
    # then the progress message shows done, and the result came as a new message mentioning
    # the requester
    progress_message, result_message = emulator.messages(hook.id)
    edits = emulator.edits(progress_message.id)
    assert "9/10" in description(edits[0].payload)
    assert description(edits[-1].payload).startswith("Done after")
    assert result_message.content is not None and f"<@{USER_ID}>" in result_message.content
    run = await get_run(client, "run_3")
    assert (run["status"], run["result_status"]) == ("finished", "delivered")
    assert_discord_saw_no_misbehaviour(emulator)


async def test_a_failed_run_is_rendered_as_an_error_without_results(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a channel run
    hook = emulator.create_webhook()
    await start(client, run_body("run_4", destination={"webhook_url": hook.url}))
    await worker.drain()
    # when it reports a failure instead of results
    response = await client.post(
        "/v1/results",
        json={"workflow_id": "run_4", "error": {"stage": "transcribe", "message": "no audio"}},
        headers=ACME,
    )
    assert response.status_code == 202, response.text
    await worker.drain()
    # then the run is failed with its error, its progress message says so, and the result is
    # an error rendering
    run = await get_run(client, "run_4")
    assert run["status"] == "failed"
    assert run["error"] == {"stage": "transcribe", "message": "no audio"}
    assert run["result_status"] == "delivered"
    progress_message, result_message = emulator.messages(hook.id)
    final = description(emulator.edits(progress_message.id)[-1].payload)
    assert final.startswith("Failed during **transcribe**") and "no audio" in final
    text = str(result_message.embeds)
    assert "transcribe" in text and "no audio" in text
    assert "Traceback" not in text


async def test_a_silent_run_is_abandoned_and_a_late_result_still_delivered(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a channel run that goes silent past its timeout
    hook = emulator.create_webhook()
    await start(
        client, run_body("run_5", destination={"webhook_url": hook.url}, timeout_seconds=60)
    )
    await worker.drain()
    clock.advance(61)
    await worker.drain()
    # then the user is told in a new message, the progress message says it stopped, and the
    # run is abandoned
    progress_message, notice = emulator.messages(hook.id)
    stopped = description(emulator.edits(progress_message.id)[-1].payload)
    assert stopped.startswith("Stopped without a result")
    assert notice.allowed_mentions == {"parse": [], "users": [USER_ID]}
    assert "/retrieve_results workflow_id:run_5" in str(notice.embeds)
    assert (await get_run(client, "run_5"))["status"] == "abandoned"
    response = await client.put("/v1/runs/run_5/progress", json={"stage": "late"}, headers=ACME)
    assert response.status_code == 409 and response.json()["error"]["code"] == "run_closed"
    # when its result arrives after all
    response = await client.post(
        "/v1/results", json={"workflow_id": "run_5", "results": {"a": 1}}, headers=ACME
    )
    assert response.status_code == 202
    await worker.drain()
    # then it is delivered and the run is finished
    assert len(emulator.messages(hook.id)) == 3
    run = await get_run(client, "run_5")
    assert (run["status"], run["result_status"]) == ("finished", "delivered")
    assert "relay_runs_abandoned_total 1.0" in (await client.get("/metrics")).text


async def test_an_edit_refused_for_an_old_message_posts_a_fresh_progress_message(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a channel run with its progress message
    hook = emulator.create_webhook()
    await start(client, run_body("run_6", destination={"webhook_url": hook.url}))
    await worker.drain()
    # when the next edit is refused with 30046
    emulator.inject_fault("30046", webhook_id=hook.id)
    await progress(client, "run_6", "analyse", 2)
    clock.advance(3)
    await worker.drain()
    # then a fresh message shows the progress and the run goes on with it
    first, fresh = emulator.messages(hook.id)
    assert "2/10" in fresh.embeds[0]["description"]
    run = await get_run(client, "run_6")
    assert run["progress_message"] == {"route": "webhook", "message_id": fresh.id}
    assert emulator.edits(first.id) == []


async def test_a_dead_webhook_stops_the_runs_channel_messages(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a channel run whose webhook is then deleted
    hook = emulator.create_webhook()
    await start(client, run_body("run_7", destination={"webhook_url": hook.url}))
    await worker.drain()
    emulator.delete_webhook(hook.id)
    # when progress comes twice
    for i in (1, 2):
        await progress(client, "run_7", "analyse", i)
        clock.advance(3)
        await worker.drain()
    # then no request reached the webhook after its 404, and the run goes on without it
    assert emulator.counters.requests_after_404 == 0
    run = await get_run(client, "run_7")
    assert run["status"] == "running" and run["progress"]["current"] == 2


async def test_start_is_idempotent_and_scoped_to_the_tenant(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    hook = emulator.create_webhook()
    body = run_body("run_8", destination={"webhook_url": hook.url})
    assert (await client.post("/v1/runs", json=body, headers=ACME)).status_code == 201
    assert (await client.post("/v1/runs", json=body, headers=ACME)).status_code == 200
    other = {**body, "title": "Another"}
    conflict = await client.post("/v1/runs", json=other, headers=ACME)
    assert conflict.status_code == 409
    assert (await client.get("/v1/runs/run_8", headers=OTHER)).status_code == 404
    missing = await client.put("/v1/runs/nope/progress", json={"stage": "x"}, headers=ACME)
    assert missing.status_code == 404
    listed = (await client.get("/v1/runs?status=running", headers=ACME)).json()
    assert [r["workflow_id"] for r in listed["items"]] == ["run_8"]


async def test_runs_list_q_finds_a_literal_piece_of_the_id_or_url(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    # given runs whose ids differ by case and by an underscore
    hook = emulator.create_webhook()
    for workflow_id, url in (("Scan_1", "https://ci.example/a"), ("scan-2", None)):
        body = run_body(workflow_id, destination={"webhook_url": hook.url})
        if url is None:
            del body["url"]
        else:
            body["url"] = url
        assert (await client.post("/v1/runs", json=body, headers=ACME)).status_code == 201

    async def ids(q: str) -> list[str]:
        response = await client.get("/v1/runs", params={"q": q}, headers=ACME)
        assert response.status_code == 200, response.text
        return [r["workflow_id"] for r in response.json()["items"]]

    # then q matches either field in either case, its _ literally
    assert await ids("SCAN") == ["scan-2", "Scan_1"]
    assert await ids("n_") == ["Scan_1"]
    assert await ids("CI.EXAMPLE") == ["Scan_1"]
    # and each run says who asked for it, as a result does
    listed = (await client.get("/v1/runs", headers=ACME)).json()["items"]
    assert [r["requester"] for r in listed] == [
        {"user_id": USER_ID, "guild_id": None, "channel_id": None}
    ] * 2
    refused = await client.get("/v1/runs", params={"q": "x" * 101}, headers=ACME)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_query")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"workflow_id": "r"}, "missing_destination"),
        (
            {"workflow_id": "r", "destination": {"name": "x"}, "timeout_seconds": 10},
            "invalid_request",
        ),
    ],
)
async def test_invalid_runs_are_refused_with_a_code(
    client: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    response = await client.post("/v1/runs", json=body, headers=ACME)
    assert response.status_code == 422
    assert response.json()["error"]["code"] in (code, "invalid_timeout_seconds")


async def test_progress_beyond_its_total_is_refused(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    hook = emulator.create_webhook()
    await start(client, run_body("run_9", destination={"webhook_url": hook.url}))
    response = await client.put(
        "/v1/runs/run_9/progress", json={"stage": "x", "current": 5, "total": 4}, headers=ACME
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_progress"
    assert (await get_run(client, "run_9"))["progress"] is None


async def test_a_run_claimed_by_a_crashed_replica_is_taken_over_and_handed_off(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    clock: Clock,
    services: Services,
) -> None:
    # given a run held by a replica that crashed (its heartbeat ran out) before the hand-off
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=HANDOFF - 5)
    await start(
        client,
        run_body(
            "run_c", interaction=_interaction(interaction), destination={"webhook_url": hook.url}
        ),
    )
    store = services.store
    await store.heartbeat("crashed", now=clock(), ttl=1)
    assert await store.claim_due_run("crashed", now=clock(), lease_seconds=30) is not None
    # when the hand-off time comes and this worker looks
    clock.advance(5)
    await worker.drain()
    # then it took the run over: the notice is on @original, progress in one channel message
    [notice] = emulator.edits(interaction.original_message_id)
    assert "/retrieve_results workflow_id:run_c" in description(notice.payload)
    [channel] = emulator.messages(hook.id)
    run = await get_run(client, "run_c")
    assert run["status"] == "handed_off"
    assert run["progress_message"] == {"route": "webhook", "message_id": channel.id}


async def test_a_run_whose_token_already_ran_out_starts_in_the_channel(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a run started after its interaction's token ran out (within the margin)
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=850)
    await start(
        client,
        run_body(
            "run_t", interaction=_interaction(interaction), destination={"webhook_url": hook.url}
        ),
    )
    # when the engine runs
    await worker.drain()
    # then @original is never touched, the channel has the progress message, and the closed
    # session is counted
    assert emulator.edits(interaction.original_message_id) == []
    assert len(emulator.messages(hook.id)) == 1
    assert (await get_run(client, "run_t"))["status"] == "handed_off"
    metrics = (await client.get("/metrics")).text
    assert 'discord_session_closed_total{stage="run"} 1.0' in metrics
    assert_discord_saw_no_misbehaviour(emulator)


async def test_a_server_error_is_retried_with_backoff(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a channel run whose first post meets a 500
    hook = emulator.create_webhook()
    emulator.inject_fault("500", webhook_id=hook.id)
    await start(client, run_body("run_r", destination={"webhook_url": hook.url}))
    await worker.drain()
    assert emulator.messages(hook.id) == []
    # when the backoff is over (base 2 s: at most 4 s for the first retry)
    clock.advance(4)
    await worker.drain()
    # then the progress message is posted once
    assert len(emulator.messages(hook.id)) == 1
    run = await get_run(client, "run_r")
    assert run["progress_message"]["route"] == "webhook"


async def test_results_and_progress_edits_share_the_webhooks_bucket_without_a_429(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a tight webhook limit and a channel run on that webhook
    emulator.set_limits(webhook=(2, 0.3))
    hook = emulator.create_webhook()
    await start(client, run_body("run_b", destination={"webhook_url": hook.url}))
    await worker.drain()
    # when results for the same webhook and progress edits come together, round after round
    for round_ in range(3):
        for n in range(3):
            body = {
                "workflow_id": f"wf_b{round_}{n}",
                "results": {"n": n},
                "destination": {"webhook_url": hook.url},
            }
            assert (await client.post("/v1/results", json=body, headers=ACME)).status_code == 202
        await progress(client, "run_b", "analyse", round_ + 1)
        clock.advance(3)
        await worker.drain()
    # then everything arrived, the progress message was edited each round, and no 429 came
    assert len(emulator.messages(hook.id)) == 1 + 9
    [progress_message, *_] = emulator.messages(hook.id)
    assert len(emulator.edits(progress_message.id)) == 3
    assert sum(emulator.counters.rate_limited.values()) == 0
    assert_discord_saw_no_misbehaviour(emulator)


async def test_a_progress_edit_waiting_for_its_window_leaves_the_last_request_to_a_result(
    worker: Worker,
) -> None:
    # given a webhook bucket whose last answer left one request in a window of 0.3 s
    async with worker.turn("lane-a", counts_globally=False) as bucket:
        answer = RateLimitInfo(remaining=1, reset_after=0.3)
        worker.observe(bucket, SendOutcome(Disposition.DELIVERED, 1.0, 200, rate_limit=answer))
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        async with worker.turn("lane-a", counts_globally=False, priority=priority):
            order.append(name)

    # when a progress edit asks for a turn, and a result a moment later
    edit = asyncio.create_task(take("edit", Priority.PROGRESS))
    await asyncio.sleep(0.05)
    assert order == []  # the edit leaves the window's last request alone
    await take("result", Priority.RESULT)
    # then the result went at once, and the edit after the window
    assert order == ["result"]
    await edit
    assert order == ["result", "edit"]


async def test_a_refused_interaction_token_hands_off_at_once(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a run whose interaction token Discord does not know (a made-up token)
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction()
    made_up = {**_interaction(interaction), "token": "x" * 60}
    await start(
        client, run_body("run_x", interaction=made_up, destination={"webhook_url": hook.url})
    )
    # when progress comes
    await progress(client, "run_x", "analyse", 1)
    await worker.drain()
    # then the run went to the channel at once, and the closed session was counted once
    assert emulator.edits(interaction.original_message_id) == []
    [channel] = emulator.messages(hook.id)
    assert "1/10" in channel.embeds[0]["description"]
    assert (await get_run(client, "run_x"))["status"] == "handed_off"
    metrics = (await client.get("/metrics")).text
    assert 'discord_session_closed_total{stage="run"} 1.0' in metrics


async def test_a_429_on_a_progress_post_is_waited_out_and_the_post_still_made(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a channel whose hidden limit (2 per 0.4 s) answers a shared 429 the headers never
    # announced, and three runs starting on it at once
    emulator.set_limits(channel=(2, 0.4))
    hook = emulator.create_webhook()
    for n in range(3):
        await start(client, run_body(f"run_429_{n}", destination={"webhook_url": hook.url}))
    # when the engine posts their progress messages
    await worker.drain()
    # then a 429 came, was waited out, and each run has its own message
    assert emulator.counters.rate_limited.get("shared", 0) >= 1
    assert emulator.counters.premature_requests == 0
    posted = {m.id for m in emulator.messages(hook.id)}
    shown = {
        (await get_run(client, f"run_429_{n}"))["progress_message"]["message_id"] for n in range(3)
    }
    assert len(posted) == 3 and shown == posted


async def test_a_run_on_a_webhook_already_known_dead_never_calls_it(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a webhook that a result's delivery found deleted
    hook = emulator.create_webhook()
    emulator.delete_webhook(hook.id)
    body = {"workflow_id": "wf_dead", "results": {}, "destination": {"webhook_url": hook.url}}
    assert (await client.post("/v1/results", json=body, headers=ACME)).status_code == 202
    await worker.drain()
    requests = emulator.counters.total_requests
    # when a run starts on it
    await start(client, run_body("run_dead", destination={"webhook_url": hook.url}))
    await worker.drain()
    # then no request goes to it, and the run waits for its result or its timeout
    assert emulator.counters.total_requests == requests
    assert (await get_run(client, "run_dead"))["progress_message"] is None


class _LateTurns:
    """Turns that come only after half the lease went by (a long global pause, say)."""

    def __init__(self, clock: Clock, late_by: float) -> None:
        self.clock, self.late_by = clock, late_by

    @contextlib.asynccontextmanager
    async def turn(
        self, key: str, *, counts_globally: bool, priority: Priority = Priority.RESULT
    ) -> AsyncIterator[Bucket]:
        self.clock.advance(self.late_by)
        yield Bucket()

    def observe(self, bucket: Bucket, outcome: SendOutcome) -> None:
        pass


async def test_a_turn_that_comes_too_late_for_the_lease_sends_nothing_and_gives_the_run_back(
    client: httpx.AsyncClient, emulator: DiscordEmulator, services: Services, clock: Clock
) -> None:
    # given a claimed channel run, and turns that come after more than half its lease
    hook = emulator.create_webhook()
    await start(client, run_body("run_late", destination={"webhook_url": hook.url}))
    store = services.store
    engine = RunEngine(
        store=store,
        sender=services.sender,
        settings=services.settings,
        metrics=services.metrics,
        clock=clock,
        turns=_LateTurns(clock, services.settings.lease_seconds / 2 + 1),
        persist=lambda write: write(),
    )
    await store.heartbeat("engine", now=clock(), ttl=600)
    run = await store.claim_due_run("engine", now=clock(), lease_seconds=30)
    assert run is not None
    # when the engine works it
    await engine.work("engine", run)
    # then nothing was sent, and the run is free and due at once for whoever claims it next
    assert emulator.counters.total_requests == 0
    again = await store.claim_due_run("other", now=clock(), lease_seconds=30)
    assert again is not None and again.workflow_id == "run_late"


async def test_after_the_hand_off_the_result_comes_in_the_channel_even_with_the_token_given(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker, clock: Clock
) -> None:
    # given a run handed off while its token still has minutes to live
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=HANDOFF - 1)
    token = _interaction(interaction)
    await start(client, run_body("run_h", interaction=token, destination={"webhook_url": hook.url}))
    clock.advance(1)
    await worker.drain()
    assert (await get_run(client, "run_h"))["status"] == "handed_off"
    # when the bot sends the result with the run's interaction again (as the client does)
    response = await client.post(
        "/v1/results",
        json={"workflow_id": "run_h", "results": {"summary": "ok"}, "interaction": token},
        headers=ACME,
    )
    assert response.status_code == 202, response.text
    clock.advance(1)
    await worker.drain()
    # then it is delivered in the channel, where the notice said, not as a follow-up
    assert emulator.followups(interaction.interaction_id) == []
    [_progress, result] = emulator.messages(hook.id)
    assert result.embeds[0]["footer"]["text"].endswith("run_h")
    assert_discord_saw_no_misbehaviour(emulator)
