"""Three `result-relay serve` replicas on one PostgreSQL database, delivering to the emulator."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.testing import DiscordEmulator, EmulatedWebhook, EmulatorServer
from tests.postgres import create_database, drop_database

from ._support import Relay, auth, wait_until

pytestmark = pytest.mark.postgres

WEBHOOKS = 30
PER_WEBHOOK = 20


@pytest.fixture
def pg_relay(tmp_path: Path) -> Iterator[Relay]:
    """Servers on a fresh PostgreSQL database of their own (skips without one)."""
    url = asyncio.run(create_database())
    manager = Relay(tmp_path, url)
    try:
        yield manager
    finally:
        manager.stop_all()
        asyncio.run(drop_database(url))


def _footers(emulator: DiscordEmulator, hooks: list[EmulatedWebhook]) -> list[str]:
    return [
        m.embeds[0]["footer"]["text"].removeprefix("workflow ")
        for hook in hooks
        for m in emulator.messages(hook.id)
    ]


def _submit(
    bases: list[str], hooks: list[EmulatedWebhook], prefix: str, per_webhook: int = PER_WEBHOOK
) -> list[str]:
    """Round-robin over the replicas: each result is accepted by one of them."""
    ids = []
    clients = [httpx.Client(base_url=b, headers=auth(), timeout=10) for b in bases]
    try:
        for n in range(per_webhook):
            for h, hook in enumerate(hooks):
                workflow_id = f"{prefix}_{h}_{n}"
                body = {
                    "workflow_id": workflow_id,
                    "results": {"summary": workflow_id},
                    "destination": {"webhook_url": hook.url},
                }
                client = clients[len(ids) % len(clients)]
                assert client.post("/v1/results", json=body).status_code == 202
                ids.append(workflow_id)
    finally:
        for client in clients:
            client.close()
    return ids


def test_three_replicas_share_the_work_within_discords_limits(pg_relay: Relay) -> None:
    emulator = DiscordEmulator()
    with EmulatorServer(emulator) as discord:
        env = {
            "RELAY_DISCORD_API_BASE": discord.api_base,
            "RELAY_LEASE_SECONDS": "3",
            "RELAY_POLL_SECONDS": "0.5",
        }
        replicas = [pg_relay.start(env) for _ in range(3)]
        hooks = [emulator.create_webhook() for _ in range(WEBHOOKS)]

        # given 600 results over 30 webhooks, accepted by the three replicas in turn
        ids = _submit([r.base_url for r in replicas], hooks, "a")
        # then all are delivered, one request at a time per webhook, within the limits
        wait_until(lambda: len(_footers(emulator, hooks)) >= len(ids), 90, "600 deliveries")
        counters = emulator.counters
        assert Counter(_footers(emulator, hooks)) == Counter(ids)
        assert counters.max_concurrent_per_webhook == 1
        assert counters.rate_limited.get("user", 0) + counters.rate_limited.get("shared", 0) <= (
            WEBHOOKS
        )
        assert counters.rate_limited.get("global", 0) == 0
        assert counters.payload_400s == 0 and counters.bad_allowed_mentions == 0

        # when one replica is SIGKILLed in the middle of a second burst
        emulator.reset_counters()
        more = _submit([r.base_url for r in replicas], hooks, "b", per_webhook=6)
        wait_until(lambda: len(_footers(emulator, hooks)) >= len(ids) + 60, 60, "the burst")
        replicas[0].kill()
        # then the other two finish its work: nothing lost, duplicates only for what was in flight
        wait_until(lambda: set(_footers(emulator, hooks)) >= set(ids + more), 90, "the rest")
        with httpx.Client(base_url=replicas[1].base_url, headers=auth(), timeout=10) as api:
            pending = api.get("/v1/results", params={"status": "pending", "limit": 1}).json()
            assert pending["items"] == []
        seen = Counter(_footers(emulator, hooks))
        duplicates = sum(n - 1 for n in seen.values())
        assert duplicates <= WEBHOOKS  # at most one request in flight per lane
        assert emulator.counters.max_concurrent_per_webhook == 1
