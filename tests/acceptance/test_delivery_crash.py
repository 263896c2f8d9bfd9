"""A real `result-relay serve` delivering to the Discord emulator over sockets, killed mid-burst."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from service.testing import DiscordEmulator, EmulatorServer

from ._support import Relay, auth, wait_until

WEBHOOKS = 8
PER_WEBHOOK = 10


@dataclass
class Burst:
    """What a burst killed midway left: per workflow id, the messages Discord holds, the
    stored record and its attempts; and how long the second process took to resume."""

    ids: list[str]
    counts: Counter[str]
    records: dict[str, dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]
    sent: set[str]
    resumed_after: float

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.counts.values())

    def outcomes(self, outcome: str) -> int:
        return sum(a["outcome"] == outcome for items in self.history.values() for a in items)


def killed_mid_burst(relay: Relay, emulator: DiscordEmulator, *, bot: bool) -> Burst:
    """80 results to 8 registered webhooks at Discord's pace (5 per 2 s per webhook), with the
    default 30 s lease; SIGKILL mid-burst while a posted part waits for its answer on every
    webhook, and a second process on the same database. With ``bot`` the tenant has a bot that
    can read every webhook's channel."""
    with EmulatorServer(emulator) as discord:
        env = {"RELAY_DISCORD_API_BASE": discord.api_base, "RELAY_POLL_SECONDS": "0.2"}
        hooks = [emulator.create_webhook() for _ in range(WEBHOOKS)]
        if bot:
            env["RELAY_BOT_TOKENS"] = f"acme:{emulator.create_bot().token}"
        first = relay.start(env)
        ids = [f"wf_{h}_{n}" for h in range(WEBHOOKS) for n in range(PER_WEBHOOK)]
        with first.client(headers=auth()) as api:
            for h, hook in enumerate(hooks):
                put = api.put(f"/v1/destinations/hook{h}", json={"webhook_url": hook.url})
                assert put.status_code == 201, put.text
            for workflow_id in ids:
                body = {
                    "workflow_id": workflow_id,
                    "results": {"summary": workflow_id},
                    "destination": {"name": f"hook{workflow_id.split('_')[1]}"},
                }
                assert api.post("/v1/results", json=body).status_code == 202

        def received() -> list[str]:
            return [
                m.embeds[0]["footer"]["text"].removeprefix("workflow ")
                for h in hooks
                for m in emulator.messages(h.id)
            ]

        # when the process is SIGKILLed in the middle of the burst, with a part posted but not
        # yet answered on every webhook
        wait_until(lambda: len(received()) >= WEBHOOKS * 3, 20, "the burst to start")
        for hook in hooks:
            emulator.inject_fault("hang_after_store", webhook_id=hook.id, seconds=5)
        wait_until(lambda: not emulator.pending_faults(), 10, "a part in flight on every lane")
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
    sent = {m.id for h in hooks for m in emulator.messages(h.id)}
    return Burst(ids, Counter(received()), records, history, sent, resumed_after)


def test_sigkill_mid_burst_loses_nothing_and_every_duplicate_is_visible(relay: Relay) -> None:
    # given a burst killed midway and resumed by a second process (no bot)
    emulator = DiscordEmulator()
    burst = killed_mid_burst(relay, emulator, bot=False)
    # then delivery resumed long before the old leases ran out (30 s)
    assert burst.resumed_after < 10, burst.resumed_after
    # and every result was delivered, nothing lost, and each stored id is one Discord holds
    assert {r["status"] for r in burst.records.values()} == {"delivered"}
    assert set(burst.counts) == set(burst.ids)
    # every duplicate shows as an ambiguous attempt; one request was in flight per lane
    ambiguous = burst.outcomes("ambiguous")
    assert burst.duplicates <= ambiguous == WEBHOOKS, (burst.duplicates, ambiguous)
    for workflow_id, count in burst.counts.items():
        if count > 1:
            assert any(a["outcome"] == "ambiguous" for a in burst.history[workflow_id])
    stored = {r["messages"][0]["message_id"] for r in burst.records.values()}
    assert stored <= burst.sent
    assert emulator.counters.payload_400s == 0
    assert emulator.counters.bad_allowed_mentions == 0


def test_sigkill_mid_burst_makes_no_duplicate_where_the_bot_can_read_the_channel(
    relay: Relay,
) -> None:
    # given the same burst, for a tenant whose bot can read every webhook's channel
    emulator = DiscordEmulator()
    burst = killed_mid_burst(relay, emulator, bot=True)
    # then every result was delivered exactly once
    assert {r["status"] for r in burst.records.values()} == {"delivered"}
    assert set(burst.counts) == set(burst.ids)
    assert burst.duplicates == 0, burst.counts.most_common(3)
    # and each part the crash left in flight was found in its channel and recorded with the id
    # of the message Discord holds, not sent again
    ambiguous, reconciled = burst.outcomes("ambiguous"), burst.outcomes("reconciled")
    assert reconciled == ambiguous == WEBHOOKS, (reconciled, ambiguous)
    stored = {r["messages"][0]["message_id"] for r in burst.records.values()}
    assert stored == burst.sent
    assert emulator.counters.payload_400s == 0
    assert emulator.counters.bad_allowed_mentions == 0
    assert emulator.counters.unauthorized == 0


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
