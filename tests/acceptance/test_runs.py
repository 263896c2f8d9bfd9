"""A run's whole conversation through a real `result-relay serve` and the Discord emulator over
sockets: progress on @original, the hand-off before the token ends, one channel message edited in
place, the result once; and a SIGKILL mid-run that still hands off and finishes."""

from __future__ import annotations

import itertools
import time

import httpx

from service.testing import DiscordEmulator, EmulatedInteraction, EmulatedWebhook, EmulatorServer

from ._support import Relay, auth, wait_until

HANDOFF = 30.0  # RELAY_HANDOFF_AT_SECONDS, small so that the interaction is 27 s old
AGE = HANDOFF - 3


def _env(api_base: str) -> dict[str, str]:
    return {
        "RELAY_DISCORD_API_BASE": api_base,
        "RELAY_POLL_SECONDS": "0.2",
        "RELAY_HANDOFF_AT_SECONDS": str(HANDOFF),
        "RELAY_PROGRESS_INTERVAL_SECONDS": "1",
    }


def _start(
    api: httpx.Client, workflow_id: str, interaction: EmulatedInteraction, hook: EmulatedWebhook
) -> None:
    body = {
        "workflow_id": workflow_id,
        "title": "Analysis",
        "interaction": {
            "application_id": interaction.application_id,
            "interaction_id": interaction.interaction_id,
            "token": interaction.token,
        },
        "destination": {"webhook_url": hook.url},
        "requester": {"user_id": "334455667788990011"},
    }
    assert api.post("/v1/runs", json=body).status_code == 201


def _progress(api: httpx.Client, workflow_id: str, current: int) -> None:
    response = api.put(
        f"/v1/runs/{workflow_id}/progress",
        json={"stage": "analyse", "current": current, "total": 100},
    )
    assert response.status_code == 202, response.text


def _no_misbehaviour(emulator: DiscordEmulator) -> None:
    counters = emulator.counters
    assert sum(counters.rate_limited.values()) == 0, counters.rate_limited
    assert counters.premature_requests == 0
    assert counters.payload_400s == 0
    assert counters.bad_allowed_mentions == 0


def test_a_run_hands_off_before_the_token_ends_and_finishes_in_the_channel(relay: Relay) -> None:
    # given a service and a run whose interaction was created 3 s before the hand-off time
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        hook = emulator.create_webhook()
        server = relay.start(_env(discord.api_base))
        # Created once the service is up: a slow start on a busy machine must not eat the 3 s.
        interaction = emulator.create_interaction(age_seconds=AGE)
        with server.client(headers=auth()) as api:
            _start(api, "wf_run", interaction, hook)
            handoff_at = time.time() + 3
            # when progress comes every 0.25 s for 6 s, then the result
            for i in range(24):
                _progress(api, "wf_run", i + 1)
                time.sleep(0.25)
            assert api.get("/v1/runs/wf_run").json()["status"] == "handed_off"
            body = {"workflow_id": "wf_run", "results": {"summary": "done"}}
            assert api.post("/v1/results", json=body).status_code == 202

            def finished() -> bool:
                run = api.get("/v1/runs/wf_run").json()
                return (
                    run["result_status"] == "delivered"
                    and len(emulator.edits(emulator.messages(hook.id)[0].id)) >= 2
                    and run["status"] == "finished"
                )

            wait_until(finished, 15, "the result and the final state")
            run = api.get("/v1/runs/wf_run").json()

    # then @original showed progress, then the notice, all before the token would expire
    original = emulator.edits(interaction.original_message_id)
    assert len(original) >= 2
    notice = original[-1]
    assert "/retrieve_results workflow_id:wf_run" in notice.payload["embeds"][0]["description"]
    assert all(e.received_at < interaction.expires_at - 60 for e in original)
    assert notice.received_at >= handoff_at - 1
    # and the edits before it came at most about once a second (coalesced)
    progress_edits = original[:-1]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(progress_edits)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    # and one channel message was edited in place, then the result came once, as a new message
    progress_message, result = emulator.messages(hook.id)
    channel_edits = emulator.edits(progress_message.id)
    assert len(channel_edits) >= 2
    assert channel_edits[-1].payload["embeds"][0]["description"].startswith("Done after")
    assert "done" in str(result.embeds)
    assert run["progress_message"] == {"route": "webhook", "message_id": progress_message.id}
    assert emulator.followups(interaction.interaction_id) == []
    _no_misbehaviour(emulator)


def test_sigkill_mid_run_then_restart_still_hands_off_and_finishes(relay: Relay) -> None:
    # given a run with progress on @original, 4 s before its hand-off
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        hook = emulator.create_webhook()
        env = _env(discord.api_base)
        first = relay.start(env)
        interaction = emulator.create_interaction(age_seconds=HANDOFF - 4)
        with first.client(headers=auth()) as api:
            _start(api, "wf_kill", interaction, hook)
            _progress(api, "wf_kill", 10)
            wait_until(
                lambda: len(emulator.edits(interaction.original_message_id)) >= 1,
                10,
                "the first progress edit",
            )
        # when the process is SIGKILLed and another starts on the same database
        first.kill()
        second = relay.start(env)
        with second.client(headers=auth()) as api:
            wait_until(lambda: len(emulator.messages(hook.id)) == 1, 20, "the hand-off")
            _progress(api, "wf_kill", 50)
            body = {"workflow_id": "wf_kill", "results": {"summary": "done"}}
            assert api.post("/v1/results", json=body).status_code == 202
            wait_until(
                lambda: api.get("/v1/runs/wf_kill").json()["result_status"] == "delivered",
                15,
                "the result",
            )
            wait_until(
                lambda: (
                    emulator.edits(emulator.messages(hook.id)[0].id)[-1]
                    .payload["embeds"][0]["description"]
                    .startswith("Done after")
                ),
                10,
                "the final state",
            )
            run = api.get("/v1/runs/wf_kill").json()

    # then the restarted service handed off (notice on @original) and finished in the channel
    notice = emulator.edits(interaction.original_message_id)[-1]
    assert "/retrieve_results workflow_id:wf_kill" in notice.payload["embeds"][0]["description"]
    assert run["status"] == "finished"
    assert len(emulator.messages(hook.id)) == 2  # the progress message and the result, once
    _no_misbehaviour(emulator)
