"""A real `result-relay serve` delivering to the Discord emulator over sockets, killed mid-burst."""

from __future__ import annotations

import time
from collections import Counter

from service.testing import DiscordEmulator, EmulatorServer

from ._support import Relay, auth, wait_until

WEBHOOKS = 8
PER_WEBHOOK = 10


def test_sigkill_mid_burst_loses_nothing_and_every_duplicate_is_visible(relay: Relay) -> None:
    # given a service delivering to Discord at Discord's pace (5 per 2 s per webhook), with the
    # default 30 s lease: a restart must not wait for it
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        env = {"RELAY_DISCORD_API_BASE": discord.api_base, "RELAY_POLL_SECONDS": "0.2"}
        hooks = [emulator.create_webhook() for _ in range(WEBHOOKS)]
        first = relay.start(env)
        ids = [f"wf_{h}_{n}" for h in range(WEBHOOKS) for n in range(PER_WEBHOOK)]
        with first.client(headers=auth()) as api:
            for workflow_id in ids:
                hook = hooks[int(workflow_id.split("_")[1])]
                body = {
                    "workflow_id": workflow_id,
                    "results": {"summary": workflow_id},
                    "destination": {"webhook_url": hook.url},
                }
                assert api.post("/v1/results", json=body).status_code == 202

        def received() -> list[str]:
            return [
                m.embeds[0]["footer"]["text"].removeprefix("workflow ")
                for h in hooks
                for m in emulator.messages(h.id)
            ]

        # when the process is SIGKILLed in the middle of the burst
        wait_until(lambda: len(received()) >= WEBHOOKS * 3, 20, "the burst to start")
        first.kill()
        killed_at, before = time.monotonic(), len(received())
        # and a new one starts on the same database
        second = relay.start(env)
        wait_until(lambda: len(received()) > before, 15, "the first delivery after the restart")
        resumed_after = time.monotonic() - killed_at
        with second.client(headers=auth()) as api:

            def settled() -> bool:
                listing = api.get("/v1/results", params={"status": "pending", "limit": 1})
                return listing.json()["items"] == []

            wait_until(settled, 60, "every result to settle")
            records = {w: api.get(f"/v1/results/{w}").json() for w in ids}
            history = {w: api.get(f"/v1/results/{w}/attempts").json()["items"] for w in ids}

    # then delivery resumed long before the old leases ran out (30 s)
    assert resumed_after < 10, resumed_after
    # and every result was delivered, nothing lost, and each stored id is one Discord holds
    assert {r["status"] for r in records.values()} == {"delivered"}
    counts = Counter(received())
    assert set(counts) == set(ids)
    duplicates = sum(n - 1 for n in counts.values())
    ambiguous = sum(a["outcome"] == "ambiguous" for items in history.values() for a in items)
    # every duplicate shows as an ambiguous attempt; at most one request was in flight per lane
    assert duplicates <= ambiguous <= WEBHOOKS, (duplicates, ambiguous)
    for workflow_id, count in counts.items():
        if count > 1:
            assert any(a["outcome"] == "ambiguous" for a in history[workflow_id]), workflow_id
    stored = {r["messages"][0]["message_id"] for r in records.values()}
    sent = {m.id for h in hooks for m in emulator.messages(h.id)}
    assert stored <= sent
    assert emulator.counters.payload_400s == 0
    assert emulator.counters.bad_allowed_mentions == 0


def test_sigterm_finishes_requests_in_flight_and_releases_lanes(relay: Relay) -> None:
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        env = {"RELAY_DISCORD_API_BASE": discord.api_base, "RELAY_POLL_SECONDS": "0.2"}
        hook = emulator.create_webhook()
        server = relay.start(env)
        with server.client(headers=auth()) as api:
            for n in range(12):
                body = {
                    "workflow_id": f"wf_{n}",
                    "results": {"summary": "x"},
                    "destination": {"webhook_url": hook.url},
                }
                assert api.post("/v1/results", json=body).status_code == 202
        wait_until(lambda: len(emulator.messages(hook.id)) >= 5, 10, "the first messages")
        # when it is asked to stop while the lane waits for Discord's bucket to refill
        # (uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why)
        assert server.stop() in (0, -15)
        assert "Application shutdown complete." in server.stderr()
        # then a new process takes over at once (the lease was released, not left to expire)
        again = relay.start({**env, "RELAY_LEASE_SECONDS": "300"})
        with again.client(headers=auth()) as api:
            wait_until(
                lambda: api.get("/v1/results", params={"status": "pending"}).json()["items"] == [],
                20,
                "the rest to be delivered",
            )
        assert len(emulator.messages(hook.id)) == 12
        assert emulator.counters.payload_400s == 0


def test_worker_command_delivers_what_an_api_only_server_accepted(relay: Relay) -> None:
    # given an API process without a worker, and `result-relay worker` alone on the same database
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        env = {"RELAY_DISCORD_API_BASE": discord.api_base, "RELAY_POLL_SECONDS": "0.2"}
        api_only = relay.start({**env, "RELAY_WORKER_ENABLED": "false"})
        worker = relay.spawn("worker", extra_env=env)
        hook = emulator.create_webhook()
        with api_only.client(headers=auth()) as api:
            body = {
                "workflow_id": "wf_w",
                "results": {"summary": "x"},
                "destination": {"webhook_url": hook.url},
            }
            assert api.post("/v1/results", json=body).status_code == 202
            # then the worker finds it by polling and delivers it
            wait_until(lambda: len(emulator.messages(hook.id)) == 1, 15, "the delivery")
            wait_until(
                lambda: api.get("/v1/results/wf_w").json()["status"] == "delivered",
                5,
                "the record",
            )
        # and it stops cleanly on SIGTERM
        worker.terminate()
        assert worker.wait(15) == 0
