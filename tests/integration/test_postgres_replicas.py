"""Several replicas on one PostgreSQL database: two ``PostgresStore`` objects (two pools) on the
same database are two replicas. Claims never overlap, new work wakes the others, a pause and the
replica count are shared, and accepting into a lane being killed never strands a result."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from service.domain import Destination, ResultFilter, Status
from service.store import Store
from tests.integration.test_store_contract import T0, deliver, new, wait_until
from tests.support import CIPHER, FAKE_TOKEN, SECRET_KEY, WEBHOOK_ID

asyncpg = pytest.importorskip("asyncpg")
pytestmark = pytest.mark.postgres

from service.store.postgres import PostgresStore  # noqa: E402

Replicas = Callable[[int], Awaitable[list[PostgresStore]]]


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[Replicas]:
    """``await replicas(n)``: n open stores on one fresh database, closed at the end."""
    opened: list[PostgresStore] = []

    async def start(n: int) -> list[PostgresStore]:
        stores = [PostgresStore(pg_url, cipher=CIPHER, min_size=1, max_size=4) for _ in range(n)]
        for store in stores:
            await store.open()
            opened.append(store)
        return stores

    yield start
    await asyncio.gather(*(s.close() for s in opened))


def hook(i: int) -> Destination:
    return Destination(webhook_id=str(100_000_000_000_000_000 + i), webhook_token=FAKE_TOKEN)


async def test_concurrent_claims_never_give_one_lane_two_owners(
    replicas: Replicas, pg_url: str
) -> None:
    stores = await replicas(6)
    lanes = 24
    for i in range(lanes):
        await stores[i % 6].accept(new(f"wf{i}", hook(i)), now=T0 + i * 0.001)

    async def claim_all(store: Store, owner: str, now: float) -> list[str]:
        # A lease counts only while its owner heartbeats, as a worker does before it claims.
        await store.heartbeat(owner, now=now, ttl=30)
        claimed = []
        while (lane := await store.claim_lane(owner, now=now, lease_seconds=30)) is not None:
            claimed.append(lane)
        return claimed

    # Three rounds: fresh lanes, then every lease lapsed and taken over at once.
    for round_, now in enumerate((T0 + 1, T0 + 40, T0 + 80)):
        owners = [f"r{s}-w{w}-{round_}" for s in range(6) for w in range(3)]
        claims = await asyncio.gather(
            *(claim_all(stores[i % 6], owner, now) for i, owner in enumerate(owners))
        )
        held = Counter(itertools.chain.from_iterable(claims))
        assert len(held) == lanes, "every due lane is claimed"
        assert set(held.values()) == {1}, f"a lane was claimed twice: {held.most_common(3)}"
        conn = await asyncpg.connect(pg_url)
        try:
            rows = await conn.fetch("SELECT lane, lease_owner FROM lanes")
        finally:
            await conn.close()
        by_owner = {lane: owner for owner, got in zip(owners, claims, strict=True) for lane in got}
        assert {r["lane"]: r["lease_owner"] for r in rows} == by_owner


async def test_renewal_races_a_takeover_and_only_one_wins(replicas: Replicas) -> None:
    a, b = await replicas(2)
    await a.accept(new("wf"), now=T0)
    assert await a.claim_lane("a", now=T0, lease_seconds=10) == WEBHOOK_ID
    # at T0 + 10 the lease has just run out: a's renewal and b's claim race
    renewed, taken = await asyncio.gather(
        a.renew_lease("a", WEBHOOK_ID, now=T0 + 10, lease_seconds=10),
        b.claim_lane("b", now=T0 + 10, lease_seconds=10),
    )
    assert not renewed and taken == WEBHOOK_ID


async def test_an_accept_on_one_replica_wakes_a_subscriber_on_another(replicas: Replicas) -> None:
    a, b = await replicas(2)
    woken = asyncio.Event()
    await a.subscribe(woken.set)
    await b.accept(new("wf"), now=T0)
    await asyncio.wait_for(woken.wait(), 5)
    woken.clear()
    await deliver(b, "wf", T0 + 1)
    await b.redeliver("acme", "wf", destination=None, now=T0 + 2)
    await asyncio.wait_for(woken.wait(), 5)


async def test_a_burst_of_accepts_leaves_no_result_unannounced(replicas: Replicas) -> None:
    a, b = await replicas(2)
    woken = asyncio.Event()
    await a.subscribe(woken.set)
    burst = 60
    accepting = asyncio.gather(*(b.accept(new(f"wf{i}"), now=T0) for i in range(burst)))

    async def seen_by_a_worker() -> None:
        # What a worker does: on every wake-up look again. If one commit had no wake-up after
        # it, this would wait for ever (and time out).
        while True:
            await woken.wait()
            woken.clear()
            if (await a.count_pending())[0] == burst:
                return

    await asyncio.wait_for(asyncio.gather(accepting, seen_by_a_worker()), 10)


async def test_a_lost_listening_connection_comes_back(replicas: Replicas, pg_url: str) -> None:
    a, b = await replicas(2)
    calls: list[None] = []
    await a.subscribe(lambda: calls.append(None))
    conn = await asyncpg.connect(pg_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'result-relay-listen'"
        )
        assert killed == 1
        await wait_until(lambda: len(calls) >= 1)  # reconnected, and says work may have come
        await b.accept(new("wf"), now=T0)
        await wait_until(lambda: len(calls) >= 2)
    finally:
        await conn.close()


async def test_a_pause_and_the_replica_count_are_shared(replicas: Replicas) -> None:
    a, b = await replicas(2)
    await a.pause_all(until=T0 + 60)
    assert await b.paused_until() == T0 + 60
    await b.pause_all(until=T0 + 30)
    assert await a.paused_until() == T0 + 60
    assert await a.heartbeat("a", now=T0, ttl=15) == 1
    assert await b.heartbeat("b", now=T0 + 1, ttl=15) == 2
    assert await a.heartbeat("a", now=T0 + 10, ttl=15) == 2
    await b.forget_replica("b")
    assert await a.heartbeat("a", now=T0 + 11, ttl=15) == 1


async def test_one_id_accepted_on_many_replicas_at_once_is_created_once(replicas: Replicas) -> None:
    stores = await replicas(4)
    outcomes = await asyncio.gather(
        *(s.accept(new("wf"), now=T0) for s in stores for _ in range(5))
    )
    assert sum(o.created for o in outcomes) == 1
    assert {o.record.created_at for o in outcomes} == {T0}


async def test_results_accepted_while_their_lane_is_killed_are_never_stranded(
    replicas: Replicas,
) -> None:
    a, b, c = await replicas(3)
    # The race it guards against is narrow: several rounds, each on a lane of its own.
    for round_ in range(5):
        lane = hook(round_)
        accepts = [
            s.accept(new(f"wf{round_}-{i}", lane), now=T0)
            for i, s in zip(range(60), itertools.cycle([b, c]), strict=False)
        ]
        killing = a.kill_webhook(
            lane.webhook_id, lane.webhook_token, reason="webhook_deleted", now=T0
        )
        await asyncio.gather(*accepts[:30], killing, *accepts[30:])
        pending, _ = await a.count_pending()
        assert pending == 0, "a result was left pending in a dead lane"
    page = await a.list_results("acme", ResultFilter(), limit=500, cursor=None)
    assert len(page.items) == 300
    assert {(r.status, r.orphan_reason) for r in page.items} == {
        (Status.ORPHANED, "webhook_deleted")
    }


async def test_replicas_with_skewed_clocks_agree_on_leases(pg_url: str) -> None:
    # given two workers on one database, one of them with a clock 40 s ahead (longer than a
    # lease), delivering a burst at Discord's pace
    import time

    import httpx

    from service.config import load_settings
    from service.delivery.worker import Worker
    from service.discord.sender import Sender, make_discord_client
    from service.metrics import Metrics
    from service.testing import DiscordEmulator

    emulator = DiscordEmulator()
    emulator.set_limits(webhook=(5, 0.4))
    hooks = [emulator.create_webhook() for _ in range(3)]
    settings = load_settings(
        database_url=pg_url, lease_seconds=2.0, poll_seconds=0.1, secret_key=SECRET_KEY
    )
    stores = [PostgresStore(pg_url, cipher=CIPHER, min_size=1, max_size=4) for _ in range(2)]
    clients = [make_discord_client(httpx.ASGITransport(app=emulator.app)) for _ in range(2)]
    workers = []
    for store, client, skew in zip(stores, clients, (0.0, 40.0), strict=True):
        await store.open()
        workers.append(
            Worker(
                store=store,
                sender=Sender(client, api_base=settings.discord_api_base),
                settings=settings,
                metrics=Metrics(),
                clock=lambda skew=skew: time.time() + skew,
            )
        )
    ids = [f"wf_{i:02d}" for i in range(36)]
    for i, workflow_id in enumerate(ids):
        destination = Destination(webhook_id=hooks[i % 3].id, webhook_token=hooks[i % 3].token)
        await stores[i % 2].accept(new(workflow_id, destination), now=time.time())
    # when both work the burst
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with asyncio.timeout(30):
            while (await stores[0].count_pending())[0]:
                await asyncio.sleep(0.05)
    finally:
        for worker in workers:
            await worker.stop()
        await asyncio.gather(*running)
        for client in clients:
            await client.aclose()
        for store in stores:
            await store.close()
    # then every result was posted once, in order per webhook, one request at a time
    footers = [m.embeds[0]["footer"]["text"] for h in hooks for m in emulator.messages(h.id)]
    counts = Counter(footers)
    assert len(counts) == len(ids) and set(counts.values()) == {1}, counts
    assert emulator.counters.max_concurrent_per_webhook == 1
    for h in hooks:
        sent = [m.embeds[0]["footer"]["text"] for m in emulator.messages(h.id)]
        assert sent == sorted(sent)
