"""The ``Store`` contract: what every backend must do, tested the same way for each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from service.domain import (
    ApiKey,
    Attempt,
    AttemptOutcome,
    BotConfig,
    DeliveredMessage,
    Destination,
    InFlight,
    Interaction,
    NewResult,
    NewRun,
    Progress,
    Requester,
    ResultFilter,
    Route,
    RunFilter,
    RunRecord,
    RunStatus,
    RunStep,
    Status,
)
from service.errors import Conflict, ResultGone
from service.store import Store
from service.store.base import NoDestination
from service.store.sqlite import SQLiteStore
from tests.support import (
    APPLICATION_ID,
    BOT_ID,
    BOT_TOKEN,
    CHANNEL_ID,
    CIPHER,
    FAKE_TOKEN,
    INTERACTION_ID,
    INTERACTION_TOKEN,
    OTHER_WEBHOOK_ID,
    THREAD_ID,
    WEBHOOK_ID,
)

T0 = 1_790_000_000.0
HOOK = Destination(webhook_id=WEBHOOK_ID, webhook_token=FAKE_TOKEN)
OTHER_HOOK = Destination(webhook_id=OTHER_WEBHOOK_ID, webhook_token=FAKE_TOKEN)
OTHER_TOKEN = "other-token-" + "y" * 56
# The same webhook id with another token: a made-up one, or a real one after a reset.
HOOK_OTHER_TOKEN = Destination(webhook_id=WEBHOOK_ID, webhook_token=OTHER_TOKEN)


def new(workflow_id: str, destination: Destination | None = HOOK, **kw: object) -> NewResult:
    fields: dict[str, object] = {
        "tenant": "acme",
        "workflow_id": workflow_id,
        "body_hash": f"hash-{workflow_id}",
        "results": {"summary": workflow_id, "nested": {"n": [1, 2.5, None]}},
        "destination": destination,
    }
    fields.update(kw)
    return NewResult(**fields)  # type: ignore[arg-type]


def attempt(at: float, outcome: str = "retry", counts: bool = True, part: int = 0) -> Attempt:
    return Attempt(
        at=at,
        route=Route.WEBHOOK,
        outcome=AttemptOutcome(outcome),
        duration_ms=12.5,
        part=part,
        http_status=503,
        discord_code=None,
        error="service unavailable",
        counts=counts,
    )


async def deliver(store: Store, workflow_id: str, now: float, part: int = 0) -> None:
    message = DeliveredMessage(
        part=part, message_id=f"m{part}", route=Route.WEBHOOK, delivered_at=now
    )
    await store.record_delivery(
        "acme", workflow_id, attempt(now, "delivered", part=part), message, finished=True, now=now
    )


async def test_accept_commits_and_reads_back(store: Store) -> None:
    outcome = await store.accept(new("wf", url="u", depth="d", message={"content": "c"}), now=T0)
    assert outcome.created
    record = await store.get_result("acme", "wf")
    assert record == outcome.record
    assert record is not None
    assert record.status is Status.PENDING
    assert record.results == {"summary": "wf", "nested": {"n": [1, 2.5, None]}}
    assert (record.url, record.depth, record.message) == ("u", "d", {"content": "c"})
    assert record.destination == HOOK
    assert record.lane == WEBHOOK_ID
    assert (record.created_at, record.next_attempt_at, record.attempts) == (T0, T0, 0)


async def test_accept_is_idempotent_on_the_body_hash(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    again = await store.accept(new("wf"), now=T0 + 5)
    assert not again.created
    assert again.record.created_at == T0
    with pytest.raises(Conflict):
        await store.accept(replace(new("wf"), body_hash="other"), now=T0 + 5)
    assert (await store.get_result("other-tenant", "wf")) is None


async def test_concurrent_accepts_of_one_id_create_it_once(store: Store) -> None:
    outcomes = await asyncio.gather(*(store.accept(new("wf"), now=T0) for _ in range(20)))
    assert sum(o.created for o in outcomes) == 1


async def test_one_failed_write_does_not_undo_its_batch(store: Store) -> None:
    good = [store.accept(new(f"wf{i}"), now=T0) for i in range(10)]
    await store.accept(new("dup"), now=T0)
    bad = store.accept(replace(new("dup"), body_hash="x"), now=T0)
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], Conflict)
    assert all(not isinstance(r, BaseException) for r in results[:-1])
    page = await store.list_results("acme", ResultFilter(), limit=50, cursor=None)
    assert len(page.items) == 11


async def test_interaction_and_thread_pick_the_lane(store: Store) -> None:
    interaction = Interaction(APPLICATION_ID, INTERACTION_ID, INTERACTION_TOKEN)
    only_interaction = await store.accept(new("i", None, interaction=interaction), now=T0)
    assert only_interaction.record.lane == f"interaction:{INTERACTION_ID}"
    assert only_interaction.record.interaction == interaction
    threaded = replace(HOOK, thread_id=THREAD_ID)
    in_thread = await store.accept(new("t", threaded), now=T0)
    assert in_thread.record.lane == f"{WEBHOOK_ID}:{THREAD_ID}"


async def test_claim_leases_one_lane_to_one_owner(store: Store) -> None:
    for owner in ("w1", "w2", "w3", "w4"):
        await store.heartbeat(owner, now=T0, ttl=1000)  # all alive throughout
    await store.accept(new("a"), now=T0)
    await store.accept(new("b", OTHER_HOOK), now=T0 + 1)
    first = await store.claim_lane("w1", now=T0 + 2, lease_seconds=30)
    second = await store.claim_lane("w2", now=T0 + 2, lease_seconds=30)
    assert {first, second} == {WEBHOOK_ID, OTHER_WEBHOOK_ID}
    assert await store.claim_lane("w3", now=T0 + 2, lease_seconds=30) is None
    assert await store.next_due_at(now=T0 + 2) == T0 + 32  # when the first lease runs out
    # a lease renewed in time holds; one that lapsed is taken over
    assert await store.renew_lease("w1", first, now=T0 + 20, lease_seconds=30)  # type: ignore[arg-type]
    assert await store.claim_lane("w3", now=T0 + 40, lease_seconds=30) == second
    assert not await store.renew_lease("w2", second, now=T0 + 41, lease_seconds=30)  # type: ignore[arg-type]
    await store.release_lane("w1", first)  # type: ignore[arg-type]
    assert await store.claim_lane("w4", now=T0 + 42, lease_seconds=30) == first


async def test_results_waiting_to_retry_are_not_due(store: Store) -> None:
    await store.accept(new("a"), now=T0)
    await store.accept(new("b"), now=T0 + 1)
    await store.schedule_retry("acme", "a", at=T0 + 100, error="503", now=T0 + 2)
    due = await store.due_results(WEBHOOK_ID, now=T0 + 3, limit=10)
    assert [r.workflow_id for r in due] == ["b"]
    assert await store.next_due_at(now=T0 + 3) == T0 + 1
    later = await store.due_results(WEBHOOK_ID, now=T0 + 100, limit=10)
    assert [r.workflow_id for r in later] == ["a", "b"]
    record = await store.get_result("acme", "a")
    assert record is not None and record.last_error == "503"


async def test_attempts_messages_and_delivery_are_recorded(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    await store.record_attempt("acme", "wf", attempt(T0 + 1))
    await store.record_attempt("acme", "wf", attempt(T0 + 2, "rate_limited", counts=False))
    message = DeliveredMessage(part=0, message_id="1234", route=Route.WEBHOOK, delivered_at=T0 + 3)
    await store.record_delivery(
        "acme", "wf", attempt(T0 + 3, "delivered"), message, finished=True, now=T0 + 3
    )
    record = await store.get_result("acme", "wf")
    assert record is not None
    assert record.status is Status.DELIVERED
    assert record.attempts == 2
    assert record.messages == (message,)
    assert record.delivered_at == T0 + 3 and record.next_attempt_at is None
    attempts = await store.list_attempts("acme", "wf")
    assert [a.outcome for a in attempts or []] == ["retry", "rate_limited", "delivered"]
    assert await store.list_attempts("acme", "missing") is None
    assert await store.claim_lane("w", now=T0 + 10, lease_seconds=30) is None


async def test_orphan_keeps_everything_with_the_reason(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    await store.record_attempt("acme", "wf", attempt(T0 + 1))
    await store.orphan("acme", "wf", reason="attempts_exhausted", now=T0 + 2)
    record = await store.get_result("acme", "wf")
    assert record is not None
    assert (record.status, record.orphan_reason) == (Status.ORPHANED, "attempts_exhausted")
    assert record.results["summary"] == "wf"
    assert len(await store.list_attempts("acme", "wf") or []) == 1


async def test_a_partly_delivered_result_stays_pending_with_its_parts(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    message = DeliveredMessage(part=0, message_id="m0", route=Route.WEBHOOK, delivered_at=T0 + 1)
    await store.record_delivery(
        "acme", "wf", attempt(T0 + 1, "delivered"), message, finished=False, now=T0 + 1
    )
    record = await store.get_result("acme", "wf")
    assert record is not None
    assert record.status is Status.PENDING and record.messages == (message,)


async def test_redeliver_queues_again_from_the_first_part(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    await deliver(store, "wf", T0 + 1)
    record = await store.redeliver("acme", "wf", destination=OTHER_HOOK, now=T0 + 5)
    assert record is not None
    assert (record.status, record.messages, record.attempts) == (Status.PENDING, (), 0)
    assert record.destination == OTHER_HOOK and record.lane == OTHER_WEBHOOK_ID
    assert record.next_attempt_at == T0 + 5
    assert len(await store.list_attempts("acme", "wf") or []) == 1  # history is kept
    assert await store.claim_lane("w", now=T0 + 5, lease_seconds=30) == OTHER_WEBHOOK_ID
    assert await store.redeliver("acme", "missing", destination=None, now=T0) is None


async def test_redeliver_to_a_dead_webhook_and_token_is_refused(store: Store) -> None:
    # given a result whose webhook died for its token
    await store.accept(new("wf"), now=T0)
    await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 1)
    # when it is redelivered there (its own destination, or named again), then it is refused
    for target in (None, HOOK, replace(HOOK, thread_id=THREAD_ID)):
        with pytest.raises(Conflict) as caught:
            await store.redeliver("acme", "wf", destination=target, now=T0 + 2)
        assert caught.value.code == "destination_dead"
    # and another webhook, or the same webhook with another token, is fine
    moved = await store.redeliver("acme", "wf", destination=HOOK_OTHER_TOKEN, now=T0 + 2)
    assert moved is not None and moved.status is Status.PENDING
    assert moved.destination == HOOK_OTHER_TOKEN
    moved = await store.redeliver("acme", "wf", destination=OTHER_HOOK, now=T0 + 3)
    assert moved is not None and moved.status is Status.PENDING


async def test_a_dead_webhook_orphans_pending_and_new_results_of_its_token(store: Store) -> None:
    await store.accept(new("a"), now=T0)
    await store.accept(new("b"), now=T0)
    await store.accept(new("c", OTHER_HOOK), now=T0)
    killed = await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 1)
    assert killed == 2
    late = await store.accept(new("d"), now=T0 + 2)
    assert late.record.status is Status.ORPHANED
    assert late.record.orphan_reason == "webhook_deleted"
    assert late.record == await store.get_result("acme", "d")
    assert await store.claim_lane("w", now=T0 + 3, lease_seconds=30) == OTHER_WEBHOOK_ID
    assert await store.count_pending() == (1, T0)


async def test_kill_webhook_orphans_only_that_tokens_pending_results_in_every_tenant_and_thread(
    store: Store,
) -> None:
    # given pending results for one webhook id with its token, in two tenants and a thread, one
    # with another token, one for another webhook, and one already delivered
    await store.accept(new("plain"), now=T0)
    await store.accept(new("thread", replace(HOOK, thread_id=THREAD_ID)), now=T0)
    await store.accept(new("other-tenant", tenant="globex"), now=T0)
    await store.accept(new("other-token", HOOK_OTHER_TOKEN), now=T0)
    await store.accept(new("other-hook", OTHER_HOOK), now=T0)
    await store.accept(new("done"), now=T0)
    await deliver(store, "done", T0 + 1)
    # when Discord says the webhook is gone for that token
    killed = await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 2)
    # then exactly its token's pending results are orphaned, whatever their tenant or thread
    assert killed == 3
    statuses = {}
    for tenant, workflow_id in [
        ("acme", "plain"),
        ("acme", "thread"),
        ("globex", "other-tenant"),
        ("acme", "other-token"),
        ("acme", "other-hook"),
        ("acme", "done"),
    ]:
        record = await store.get_result(tenant, workflow_id)
        assert record is not None
        statuses[workflow_id] = (record.status, record.orphan_reason)
    orphaned = (Status.ORPHANED, "webhook_deleted")
    assert statuses == {
        "plain": orphaned,
        "thread": orphaned,
        "other-tenant": orphaned,
        "other-token": (Status.PENDING, None),
        "other-hook": (Status.PENDING, None),
        "done": (Status.DELIVERED, None),
    }
    assert await store.dead_reason(WEBHOOK_ID, FAKE_TOKEN) == "webhook_deleted"
    assert await store.dead_reason(WEBHOOK_ID, OTHER_TOKEN) is None
    assert await store.dead_reason(OTHER_WEBHOOK_ID, FAKE_TOKEN) is None


async def test_another_token_for_a_dead_webhook_id_is_delivered_as_usual(store: Store) -> None:
    # given a webhook dead for one token
    await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_unauthorized", now=T0)
    # when results come for that webhook id with another token, and with the dead one
    other = await store.accept(new("other-token", HOOK_OTHER_TOKEN), now=T0 + 1)
    dead = await store.accept(new("dead-token"), now=T0 + 1)
    # then the other token's is pending and claimable, the dead token's orphaned at once
    assert (other.record.status, other.record.orphan_reason) == (Status.PENDING, None)
    assert (dead.record.status, dead.record.orphan_reason) == (
        Status.ORPHANED,
        "webhook_unauthorized",
    )
    assert await store.claim_lane("w", now=T0 + 2, lease_seconds=30) == WEBHOOK_ID
    due = await store.due_results(WEBHOOK_ID, now=T0 + 2, limit=10)
    assert [r.workflow_id for r in due] == ["other-token"]


async def test_a_revived_webhook_takes_results_again(store: Store) -> None:
    # given a result orphaned because its webhook died for its token
    await store.accept(new("wf"), now=T0)
    await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 1)
    # when the webhook is revived
    assert await store.revive_webhook(WEBHOOK_ID, FAKE_TOKEN)
    # then it is no longer dead, new results are pending and the orphan may be redelivered
    assert await store.dead_reason(WEBHOOK_ID, FAKE_TOKEN) is None
    assert not await store.revive_webhook(WEBHOOK_ID, FAKE_TOKEN)
    assert not await store.revive_webhook(WEBHOOK_ID, OTHER_TOKEN)
    fresh = await store.accept(new("fresh"), now=T0 + 2)
    assert fresh.record.status is Status.PENDING
    again = await store.redeliver("acme", "wf", destination=None, now=T0 + 3)
    assert again is not None and again.status is Status.PENDING


async def test_killing_a_webhook_again_keeps_the_latest_reason(store: Store) -> None:
    await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_unauthorized", now=T0)
    assert await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0) == 0
    assert await store.dead_reason(WEBHOOK_ID, FAKE_TOKEN) == "webhook_deleted"


async def _record_attempt(store: Store) -> None:
    await store.record_attempt("acme", "wf", attempt(T0 + 2))


async def _record_partial_delivery(store: Store) -> None:
    message = DeliveredMessage(part=0, message_id="m0", route=Route.WEBHOOK, delivered_at=T0 + 2)
    await store.record_delivery(
        "acme", "wf", attempt(T0 + 2, "delivered"), message, finished=False, now=T0 + 2
    )


async def _schedule_retry(store: Store) -> None:
    await store.schedule_retry("acme", "wf", at=T0 + 60, error="HTTP 503", now=T0 + 2)


async def _orphan(store: Store) -> None:
    await store.orphan("acme", "wf", reason="attempts_exhausted", now=T0 + 2)


async def _mark_delivered(store: Store) -> None:
    await store.mark_delivered("acme", "wf", now=T0 + 2)


async def _redeliver(store: Store) -> None:
    await store.redeliver("acme", "wf", destination=OTHER_HOOK, now=T0 + 2)


async def _kill_webhook(store: Store) -> None:
    await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 2)


@pytest.mark.parametrize(
    "outcome",
    [
        _record_attempt,
        _record_partial_delivery,
        _schedule_retry,
        _orphan,
        _mark_delivered,
        _redeliver,
        _kill_webhook,
    ],
)
async def test_a_part_in_flight_shows_until_its_outcome_is_recorded(
    store: Store, outcome: Callable[[Store], Awaitable[None]]
) -> None:
    # given a result whose first part is on its way to Discord
    await store.accept(new("wf"), now=T0)
    await store.mark_in_flight("acme", "wf", part=0, route=Route.WEBHOOK, now=T0 + 1)
    marked = await store.get_result("acme", "wf")
    assert marked is not None
    assert marked.in_flight == InFlight(part=0, route=Route.WEBHOOK, since=T0 + 1)
    [due] = await store.due_results(WEBHOOK_ID, now=T0 + 1, limit=5)
    assert due.in_flight == marked.in_flight
    # when what became of it is recorded
    await outcome(store)
    # then it is no longer in flight
    record = await store.get_result("acme", "wf")
    assert record is not None and record.in_flight is None


async def test_a_settled_result_is_not_marked_in_flight(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    await store.orphan("acme", "wf", reason="operator", now=T0 + 1)
    await store.mark_in_flight("acme", "wf", part=0, route=Route.INTERACTION, now=T0 + 2)
    record = await store.get_result("acme", "wf")
    assert record is not None and record.in_flight is None


async def test_writes_to_a_result_deleted_meanwhile_raise_result_gone(store: Store) -> None:
    # given a result deleted through the API while the worker delivers it
    await store.accept(new("wf"), now=T0)
    assert await store.delete_result("acme", "wf")
    message = DeliveredMessage(part=0, message_id="m0", route=Route.WEBHOOK, delivered_at=T0 + 1)
    # when the worker writes to it, then each write says it is gone
    with pytest.raises(ResultGone):
        await store.mark_in_flight("acme", "wf", part=0, route=Route.WEBHOOK, now=T0 + 1)
    with pytest.raises(ResultGone):
        await store.record_attempt("acme", "wf", attempt(T0 + 1))
    with pytest.raises(ResultGone):
        await store.record_delivery(
            "acme", "wf", attempt(T0 + 1, "delivered"), message, finished=True, now=T0 + 1
        )
    # and nothing was written for it
    assert await store.get_result("acme", "wf") is None
    assert await store.list_attempts("acme", "wf") is None


async def test_a_lane_whose_owner_stopped_heartbeating_is_taken_over(store: Store) -> None:
    # given a lane leased for a minute by a replica that heartbeat once, alive for ten seconds
    await store.accept(new("wf"), now=T0)
    await store.heartbeat("a", now=T0, ttl=10)
    assert await store.claim_lane("a", now=T0, lease_seconds=60) == WEBHOOK_ID
    await store.heartbeat("b", now=T0 + 20, ttl=10)
    # when its heartbeat has run out but not its lease, then the lane is free already
    assert await store.next_due_at(now=T0 + 20) == T0
    assert await store.claim_lane("b", now=T0 + 20, lease_seconds=60) == WEBHOOK_ID
    # and the one who took it holds it
    assert not await store.renew_lease("a", WEBHOOK_ID, now=T0 + 21, lease_seconds=60)
    assert await store.renew_lease("b", WEBHOOK_ID, now=T0 + 21, lease_seconds=60)


async def test_a_lane_whose_owner_heartbeats_is_not_taken(store: Store) -> None:
    # given a lane leased for a minute by a replica that keeps heartbeating
    await store.accept(new("wf"), now=T0)
    await store.heartbeat("a", now=T0, ttl=10)
    assert await store.claim_lane("a", now=T0, lease_seconds=60) == WEBHOOK_ID
    await store.heartbeat("a", now=T0 + 8, ttl=10)
    await store.heartbeat("b", now=T0 + 15, ttl=10)
    # when another replica looks for work, then the lane is due only when the lease runs out
    assert await store.claim_lane("b", now=T0 + 15, lease_seconds=60) is None
    assert await store.next_due_at(now=T0 + 15) == T0 + 60


async def test_a_claimer_never_gets_its_own_lane_back(store: Store) -> None:
    # given a lane leased by a replica, heartbeating or not
    await store.accept(new("wf"), now=T0)
    assert await store.claim_lane("a", now=T0, lease_seconds=60) == WEBHOOK_ID
    # when it claims again before its lease runs out, then it gets nothing
    assert await store.claim_lane("a", now=T0 + 1, lease_seconds=60) is None
    await store.heartbeat("a", now=T0 + 2, ttl=10)
    assert await store.claim_lane("a", now=T0 + 3, lease_seconds=60) is None
    assert await store.claim_lane("a", now=T0 + 30, lease_seconds=60) is None


async def test_the_database_clock_is_given_where_it_is_not_this_process(store: Store) -> None:
    database_time = await store.database_time()
    if isinstance(store, SQLiteStore):
        assert database_time is None  # the file is on this machine: one clock
    else:
        assert database_time is not None
        assert abs(database_time - time.time()) < 5


async def test_purge_removes_only_old_settled_results(store: Store) -> None:
    for wf in ("old-delivered", "old-orphaned", "old-pending", "new-delivered"):
        await store.accept(new(wf), now=T0 if wf.startswith("old") else T0 + 100)
    await deliver(store, "old-delivered", T0 + 1)
    await store.orphan("acme", "old-orphaned", reason="x", now=T0 + 1)
    await deliver(store, "new-delivered", T0 + 101)
    assert await store.purge(before=T0 + 50) == 2
    page = await store.list_results("acme", ResultFilter(), limit=10, cursor=None)
    assert sorted(r.workflow_id for r in page.items) == ["new-delivered", "old-pending"]


async def test_delete_removes_the_result_and_its_history(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    await store.record_attempt("acme", "wf", attempt(T0 + 1))
    assert not await store.delete_result("other", "wf")
    assert await store.delete_result("acme", "wf")
    assert await store.get_result("acme", "wf") is None
    assert not await store.delete_result("acme", "wf")
    # the id can be used again afterwards
    assert (await store.accept(new("wf"), now=T0 + 2)).created


async def test_list_filters_and_cursor(store: Store) -> None:
    for i in range(5):
        await store.accept(new(f"wf{i}", url=f"u{i % 2}"), now=T0 + i)
    await store.orphan("acme", "wf3", reason="x", now=T0 + 9)
    page = await store.list_results("acme", ResultFilter(url="u1"), limit=1, cursor=None)
    assert [r.workflow_id for r in page.items] == ["wf3"]
    rest = await store.list_results(
        "acme", ResultFilter(url="u1"), limit=5, cursor=page.next_cursor
    )
    assert [r.workflow_id for r in rest.items] == ["wf1"] and rest.next_cursor is None
    orphaned = await store.list_results(
        "acme", ResultFilter(status=Status.ORPHANED), limit=5, cursor=None
    )
    assert [r.workflow_id for r in orphaned.items] == ["wf3"]
    window = ResultFilter(since=T0 + 1, until=T0 + 3)
    ranged = await store.list_results("acme", window, limit=5, cursor=None)
    assert [r.workflow_id for r in ranged.items] == ["wf2", "wf1"]


async def test_list_text_is_a_literal_substring_of_the_id_or_url(store: Store) -> None:
    # given results whose ids and URLs hold LIKE's wildcards, its escape and non-ASCII letters
    for i, (workflow_id, url) in enumerate(
        (
            ("Nightly-Build", None),
            ("wf_1", "https://ci.example/run?load=50%"),
            ("wf-2", "https://ci.example/run?load=500"),
            ("wfx3", "C:\\runs\\Étape"),
            ("other", "https://CI.example/ÉTAPE"),
        )
    ):
        await store.accept(new(workflow_id, url=url), now=T0 + i)

    async def ids(text: str, **kw: object) -> list[str]:
        filters = ResultFilter(text=text, **kw)  # type: ignore[arg-type]
        page = await store.list_results("acme", filters, limit=10, cursor=None)
        return [r.workflow_id for r in page.items]

    # then each backend finds the same rows, newest first
    for text, expected in (
        ("nightly", ["Nightly-Build"]),  # either case, in the id
        ("BUILD", ["Nightly-Build"]),
        ("ci.example", ["other", "wf-2", "wf_1"]),  # either case, in the URL
        ("50%", ["wf_1"]),  # % is a percent sign, not "anything"
        ("%", ["wf_1"]),
        ("wf_", ["wf_1"]),  # _ is an underscore, not "any one character"
        ("_", ["wf_1"]),
        ("\\runs", ["wfx3"]),  # the escape character stands for itself
        ("\\", ["wfx3"]),
        ("Étape", ["other", "wfx3"]),  # only ASCII letters fold: É matches as written
        ("étape", []),
        ("no such thing", []),
    ):
        assert await ids(text) == expected, text
    # and the text narrows the other filters' rows, and pages like any listing
    assert await ids("ci.example", since=T0 + 2) == ["other", "wf-2"]
    first = await store.list_results("acme", ResultFilter(text="WF"), limit=2, cursor=None)
    assert [r.workflow_id for r in first.items] == ["wfx3", "wf-2"]
    rest = await store.list_results(
        "acme", ResultFilter(text="WF"), limit=2, cursor=first.next_cursor
    )
    assert [r.workflow_id for r in rest.items] == ["wf_1"] and rest.next_cursor is None
    other = await store.list_results("other", ResultFilter(text="wf"), limit=5, cursor=None)
    assert other.items == ()


async def test_destinations_belong_to_a_tenant(store: Store) -> None:
    named = replace(HOOK, name="ops", thread_id=THREAD_ID)
    assert await store.put_destination("acme", named, now=T0)
    assert not await store.put_destination("acme", replace(named, thread_id=None), now=T0)
    assert await store.get_destination("acme", "ops") == replace(named, thread_id=None)
    assert await store.get_destination("other", "ops") is None
    assert [d.name for d in await store.list_destinations("acme")] == ["ops"]
    assert await store.delete_destination("acme", "ops")
    assert await store.list_destinations("acme") == []


async def test_a_tenant_has_one_bot_replaced_in_place(store: Store) -> None:
    bot = BotConfig(tenant="acme", bot_id=BOT_ID, username="relay-bot", token=BOT_TOKEN)
    await store.put_bot(bot, now=T0)
    assert await store.get_bot("acme") == bot
    assert await store.get_bot("other") is None
    # a second put replaces the first, whoever set it
    configured = replace(bot, username="renamed", dm_fallback=True, source="config")
    await store.put_bot(configured, now=T0 + 1)
    await store.put_bot(replace(bot, tenant="other", token=OTHER_TOKEN), now=T0 + 1)
    assert await store.get_bot("acme") == configured
    assert [b.tenant for b in await store.list_bots()] == ["acme", "other"]
    assert await store.delete_bot("acme")
    assert not await store.delete_bot("acme")
    assert await store.get_bot("acme") is None
    assert (await store.get_bot("other")) == replace(bot, tenant="other", token=OTHER_TOKEN)


async def test_a_result_naming_only_a_channel_has_the_channel_lane(store: Store) -> None:
    only_channel = new("c", None, channel_id=CHANNEL_ID, dm_fallback=True)
    outcome = await store.accept(only_channel, now=T0)
    assert outcome.record.lane == f"channel:{CHANNEL_ID}"
    assert (outcome.record.channel_id, outcome.record.dm_fallback) == (CHANNEL_ID, True)
    assert await store.get_result("acme", "c") == outcome.record
    assert await store.claim_lane("w", now=T0, lease_seconds=30) == f"channel:{CHANNEL_ID}"
    # beside a webhook, the webhook goes first and the channel is the bot's fallback
    beside = await store.accept(new("w", HOOK, channel_id=CHANNEL_ID, dm_fallback=False), now=T0)
    assert beside.record.lane == WEBHOOK_ID
    assert (beside.record.channel_id, beside.record.dm_fallback) == (CHANNEL_ID, False)
    plain = await store.accept(new("p"), now=T0)
    assert (plain.record.channel_id, plain.record.dm_fallback) == (None, None)


async def test_a_results_channel_survives_redeliver_listing_and_retention(store: Store) -> None:
    # given a delivered result with a channel beside its webhook, and one naming only a channel
    await store.accept(new("w", HOOK, channel_id=CHANNEL_ID, dm_fallback=True), now=T0)
    await store.accept(new("c", None, channel_id=CHANNEL_ID), now=T0 + 100)
    await deliver(store, "w", T0 + 1)
    # when both are redelivered (one to another webhook) and listed
    moved = await store.redeliver("acme", "w", destination=OTHER_HOOK, now=T0 + 2)
    again = await store.redeliver("acme", "c", destination=None, now=T0 + 101)
    assert moved is not None and again is not None
    assert (moved.channel_id, moved.dm_fallback, moved.lane) == (CHANNEL_ID, True, OTHER_WEBHOOK_ID)
    assert (again.channel_id, again.lane) == (CHANNEL_ID, f"channel:{CHANNEL_ID}")
    page = await store.list_results("acme", ResultFilter(), limit=10, cursor=None)
    assert {r.workflow_id: r.channel_id for r in page.items} == {"w": CHANNEL_ID, "c": CHANNEL_ID}
    # then retention keeps the newer one as it was
    await deliver(store, "w", T0 + 3)
    await deliver(store, "c", T0 + 103)
    assert await store.purge(before=T0 + 50) == 1
    kept = await store.get_result("acme", "c")
    assert kept is not None and (kept.channel_id, kept.dm_fallback) == (CHANNEL_ID, None)


async def test_api_keys_resolve_until_revoked(store: Store) -> None:
    key = ApiKey(key_id="k1", tenant="acme", label="ci", created_at=T0, revoked_at=None)
    await store.add_api_key(key, key_hash="h1")
    assert await store.tenant_for_key("h1") == "acme"
    assert await store.tenant_for_key("h2") is None
    assert await store.revoke_api_key("k1", now=T0 + 1)
    assert not await store.revoke_api_key("k1", now=T0 + 2)
    assert await store.tenant_for_key("h1") is None
    assert await store.list_api_keys() == [replace(key, revoked_at=T0 + 1)]


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for something another connection (a LISTEN, a task) makes true."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_subscribers_hear_of_new_and_redelivered_work(store: Store) -> None:
    calls: list[None] = []
    await store.subscribe(lambda: calls.append(None))
    await store.accept(new("wf"), now=T0)
    await wait_until(lambda: len(calls) == 1)
    # neither the same body again nor a result born orphaned is new work
    await store.accept(new("wf"), now=T0 + 1)
    await store.kill_webhook(OTHER_WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 1)
    await store.accept(new("orphan", OTHER_HOOK), now=T0 + 1)
    await deliver(store, "wf", T0 + 2)
    await store.redeliver("acme", "wf", destination=None, now=T0 + 3)
    await wait_until(lambda: len(calls) >= 2)
    await asyncio.sleep(0.1)  # a wrong wake-up would have come before the redelivery's
    assert len(calls) == 2


async def test_a_failing_subscriber_does_not_break_the_store(store: Store) -> None:
    heard: list[None] = []

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    await store.subscribe(broken)
    await store.subscribe(lambda: heard.append(None))
    assert (await store.accept(new("wf"), now=T0)).created
    await wait_until(lambda: len(heard) == 1)


async def test_heartbeat_counts_live_replicas_and_forgets_expired_ones(store: Store) -> None:
    assert await store.heartbeat("r1", now=T0, ttl=30) == 1
    assert await store.heartbeat("r2", now=T0 + 1, ttl=30) == 2
    assert await store.heartbeat("r1", now=T0 + 20, ttl=30) == 2
    # r2 was alive until T0 + 31 and said nothing since
    assert await store.heartbeat("r1", now=T0 + 40, ttl=30) == 1
    assert await store.heartbeat("r2", now=T0 + 41, ttl=30) == 2
    await store.forget_replica("r2")
    assert await store.heartbeat("r1", now=T0 + 42, ttl=30) == 1
    await store.forget_replica("never-seen")


async def test_a_fleet_pause_only_ever_extends(store: Store) -> None:
    assert await store.paused_until() == 0.0
    await store.pause_all(until=T0 + 10)
    await store.pause_all(until=T0 + 5)
    assert await store.paused_until() == T0 + 10
    await store.pause_all(until=T0 + 20.5)
    assert await store.paused_until() == T0 + 20.5


async def test_results_keep_key_order_and_odd_strings(store: Store) -> None:
    results = {"zeta": 1, "alpha": {"b": 2, "a": 1}, "lone": "\ud83d", "nul": "a\u0000b", "n": 1e-7}
    await store.accept(new("wf", results=results), now=T0)
    record = await store.get_result("acme", "wf")
    assert record is not None
    assert record.results == results
    assert list(record.results) == ["zeta", "alpha", "lone", "nul", "n"]
    assert list(record.results["alpha"]) == ["b", "a"]


async def test_a_cursor_out_of_range_is_refused(store: Store) -> None:
    from service.errors import InvalidRequest
    from service.store.base import encode_cursor

    for cursor in (encode_cursor(T0, 2**70), "bm90IGpzb24", encode_cursor(float("inf"), 1)):
        with pytest.raises(InvalidRequest):
            await store.list_results("acme", ResultFilter(), limit=5, cursor=cursor)


async def test_a_result_settled_meanwhile_is_not_revived(store: Store) -> None:
    await store.accept(new("wf"), now=T0)
    await store.orphan("acme", "wf", reason="operator", now=T0 + 1)
    # a worker that still had it in flight reports back late
    await store.schedule_retry("acme", "wf", at=T0 + 60, error="HTTP 503", now=T0 + 2)
    await store.orphan("acme", "wf", reason="attempts_exhausted", now=T0 + 3)
    record = await store.get_result("acme", "wf")
    assert record is not None
    assert (record.status, record.orphan_reason) == (Status.ORPHANED, "operator")


async def test_the_write_probe_commits_on_a_writable_store(store: Store) -> None:
    # given a healthy store, when readiness probes it twice, then both writes commit
    await store.probe_write()
    await store.probe_write()


@pytest.mark.postgres
async def test_the_write_probe_fails_on_a_read_only_postgres_database(pg_url: str) -> None:
    import asyncpg

    from service.errors import StoreError
    from service.store.postgres import PostgresStore

    # given a store whose database turns read-only after it opened (as a standby or an
    # operator's default_transaction_read_only would make it)
    store = PostgresStore(pg_url, cipher=CIPHER)
    await store.open()
    try:
        admin = await asyncpg.connect(pg_url)
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await admin.close()
        assert store._pool is not None
        await store._pool.expire_connections()  # new sessions pick the setting up
        # when probed, then reads still work but the write probe is a store error
        await store.ping()
        with pytest.raises(StoreError):
            await store.probe_write()
    finally:
        await store.close()


# -- runs -----------------------------------------------------------------------------------------

INTERACTION = Interaction(
    application_id=APPLICATION_ID, interaction_id=INTERACTION_ID, token=INTERACTION_TOKEN
)


def new_run(workflow_id: str, **kw: object) -> NewRun:
    fields: dict[str, object] = {
        "tenant": "acme",
        "workflow_id": workflow_id,
        "body_hash": f"run-hash-{workflow_id}",
        "timeout_seconds": 7200,
        "handoff_at": T0 + 720,
        "title": "Analysis",
        "destination": HOOK,
        "interaction": INTERACTION,
    }
    fields.update(kw)
    return NewRun(**fields)  # type: ignore[arg-type]


def step_of(run: RunRecord, **changes: object) -> RunStep:
    fields: dict[str, object] = {
        "tenant": run.tenant,
        "workflow_id": run.workflow_id,
        "seen_version": run.progress_version,
        "seen_status": run.status,
        "status": run.status,
        "shown_version": run.shown_version,
        "progress_route": run.progress_route,
        "progress_message_id": run.progress_message_id,
        "next_edit_at": run.next_edit_at,
        "final_shown": run.final_shown,
        "abandon_notified": run.abandon_notified,
        "channel_dead": run.channel_dead,
        "coalesced": 0,
        "failures": run.failures,
        "due_at": None,
    }
    fields.update(changes)
    return RunStep(**fields)  # type: ignore[arg-type]


async def test_start_run_is_idempotent_on_the_body_hash_and_reads_back(store: Store) -> None:
    # given a run started once
    first = await store.start_run(new_run("run-1"), now=T0)
    # when the same body comes again, and then another body
    again = await store.start_run(new_run("run-1"), now=T0 + 5)
    # then it is created once, due at once, with its tokens and fields read back
    assert (first.created, again.created) == (True, False)
    run = again.record
    assert run.status is RunStatus.RUNNING and run.due_at == T0
    assert run.interaction == INTERACTION and run.destination == HOOK
    assert (run.title, run.timeout_seconds, run.handoff_at) == ("Analysis", 7200, T0 + 720)
    assert run.progress is None and run.result_status is None
    with pytest.raises(Conflict):
        await store.start_run(new_run("run-1", body_hash="another"), now=T0 + 6)
    assert await store.get_run("other", "run-1") is None


async def test_progress_keeps_the_latest_and_is_due_when_an_edit_may_go(store: Store) -> None:
    # given a run whose progress message may next be edited at T0 + 3
    run = (await store.start_run(new_run("run-2"), now=T0)).record
    claimed = await store.claim_due_run("w1", now=T0, lease_seconds=30)
    assert claimed is not None
    await store.save_run_step("w1", step_of(claimed, next_edit_at=T0 + 3, due_at=T0 + 720), now=T0)
    # when two updates arrive at once
    await store.record_progress("acme", "run-2", Progress("download", 1, 10), now=T0 + 1)
    latest = await store.record_progress(
        "acme", "run-2", Progress("analyse", 3, 10, "half", updated_at=T0 + 1), now=T0 + 1
    )
    # then only the latest is kept, counted, and due when the edit may go
    assert latest is not None
    assert latest.progress == Progress("analyse", 3, 10, "half", updated_at=T0 + 1)
    assert latest.progress_version == 2 and latest.due_at == T0 + 3
    assert latest.last_activity_at == T0 + 1 and run.progress_version == 0
    assert await store.record_progress("acme", "nope", Progress("x"), now=T0) is None


async def test_a_finished_run_takes_no_progress_and_shows_the_result_status(store: Store) -> None:
    # given a run whose result arrived with an error
    await store.start_run(new_run("run-3"), now=T0)
    accepted = await store.accept(new("run-3", error=("render", "boom")), now=T0 + 10)
    assert accepted.created and accepted.run_finished
    # when progress still comes
    with pytest.raises(Conflict) as refused:
        await store.record_progress("acme", "run-3", Progress("late"), now=T0 + 11)
    # then it is refused as closed and the run reads failed with its error and result
    assert refused.value.code == "run_closed"
    run = await store.get_run("acme", "run-3")
    assert run is not None and run.status is RunStatus.FAILED
    assert (run.error_stage, run.error_message) == ("render", "boom")
    assert run.result_status is Status.PENDING and run.due_at == T0 + 10
    assert not await store.finish_run("acme", "run-3", error=None, now=T0 + 12)


async def test_a_result_takes_what_it_leaves_out_from_its_run(store: Store) -> None:
    # given a running run with a destination, an interaction and a requester
    await store.start_run(new_run("run-5", requester=Requester(user_id="42")), now=T0)
    started = await store.get_run("acme", "run-5")
    assert started is not None and started.destination is not None
    # when its result arrives naming nothing but its workflow id
    accepted = await store.accept(new("run-5", destination=None), now=T0 + 10)
    # then it is kept with the run's destination and requester, and the run is finished at once
    assert accepted.created and accepted.run_finished
    assert accepted.record.destination == started.destination
    assert accepted.record.requester == Requester(user_id="42")
    assert accepted.record.interaction == INTERACTION  # before the hand-off
    kept = await store.get_result("acme", "run-5")
    assert kept is not None and kept.destination == started.destination
    run = await store.get_run("acme", "run-5")
    assert run is not None and run.status is RunStatus.FINISHED
    # and the same body again is the same result, the run finished once
    again = await store.accept(new("run-5", destination=None), now=T0 + 11)
    assert not again.created and not again.run_finished


async def test_a_result_with_nowhere_to_go_is_refused_and_nothing_is_kept(store: Store) -> None:
    with pytest.raises(NoDestination):
        await store.accept(new("lost", destination=None), now=T0)
    assert await store.get_result("acme", "lost") is None


async def test_a_due_run_is_leased_to_one_owner_until_saved(store: Store) -> None:
    # given a due run claimed by w1
    await store.heartbeat("w1", now=T0, ttl=60)
    await store.heartbeat("w2", now=T0, ttl=60)
    await store.start_run(new_run("run-4"), now=T0)
    claimed = await store.claim_due_run("w1", now=T0, lease_seconds=30)
    assert claimed is not None and claimed.workflow_id == "run-4"
    # then nobody else gets it while the lease lives, and the sleep waits for the lease
    assert await store.claim_due_run("w2", now=T0 + 1, lease_seconds=30) is None
    assert await store.claim_due_run("w1", now=T0 + 1, lease_seconds=30) is None
    assert await store.next_run_due_at(now=T0 + 1) == T0 + 30
    # when w1 saves its step, the lease is released and the run is due when it said
    step = step_of(
        claimed,
        status=RunStatus.HANDED_OFF,
        progress_route=Route.WEBHOOK,
        progress_message_id="m1",
        due_at=T0 + 50,
    )
    assert await store.save_run_step("w1", step, now=T0 + 2)
    assert not await store.save_run_step("w2", step, now=T0 + 2)
    run = await store.get_run("acme", "run-4")
    assert run is not None and run.status is RunStatus.HANDED_OFF
    assert (run.progress_route, run.progress_message_id, run.due_at) == (
        Route.WEBHOOK,
        "m1",
        T0 + 50,
    )
    assert await store.claim_due_run("w2", now=T0 + 49, lease_seconds=30) is None
    assert await store.next_run_due_at(now=T0 + 3) == T0 + 50


async def test_a_crashed_owners_run_is_taken_over(store: Store) -> None:
    # given a run claimed by a replica that then stopped heartbeating
    await store.heartbeat("dead", now=T0, ttl=1)
    await store.start_run(new_run("run-5", requester=Requester(user_id="42")), now=T0)
    assert await store.claim_due_run("dead", now=T0, lease_seconds=30) is not None
    # when another replica looks after the heartbeat ran out
    await store.heartbeat("alive", now=T0 + 5, ttl=60)
    taken = await store.claim_due_run("alive", now=T0 + 5, lease_seconds=30)
    # then it takes the run over without waiting for the lease
    assert taken is not None and taken.workflow_id == "run-5"


async def test_a_change_during_a_step_makes_the_run_due_again(store: Store) -> None:
    # given a claimed run
    await store.start_run(new_run("run-6"), now=T0)
    claimed = await store.claim_due_run("w1", now=T0, lease_seconds=30)
    assert claimed is not None
    # when its result arrives while the engine abandons it
    await store.finish_run("acme", "run-6", error=None, now=T0 + 1)
    step = step_of(claimed, status=RunStatus.ABANDONED, final_shown=True, due_at=None)
    assert await store.save_run_step("w1", step, now=T0 + 2)
    # then the result's status wins and the run is due again to show it
    run = await store.get_run("acme", "run-6")
    assert run is not None
    assert (run.status, run.final_shown, run.due_at) == (RunStatus.FINISHED, False, T0 + 2)


async def test_list_runs_filters_and_pages(store: Store) -> None:
    for i in range(3):
        await store.start_run(new_run(f"run-l{i}", url=f"u{i % 2}"), now=T0 + i)
    await store.finish_run("acme", "run-l0", error=None, now=T0 + 5)
    first = await store.list_runs("acme", RunFilter(), limit=2, cursor=None)
    assert [r.workflow_id for r in first.items] == ["run-l2", "run-l1"]
    rest = await store.list_runs("acme", RunFilter(), limit=2, cursor=first.next_cursor)
    assert [r.workflow_id for r in rest.items] == ["run-l0"] and rest.next_cursor is None
    finished = await store.list_runs(
        "acme", RunFilter(status=RunStatus.FINISHED), limit=5, cursor=None
    )
    assert [r.workflow_id for r in finished.items] == ["run-l0"]
    by_url = await store.list_runs("acme", RunFilter(url="u0"), limit=5, cursor=None)
    assert sorted(r.workflow_id for r in by_url.items) == ["run-l0", "run-l2"]
    assert (await store.list_runs("other", RunFilter(), limit=5, cursor=None)).items == ()


async def test_list_runs_text_is_a_literal_substring_of_the_id_or_url(store: Store) -> None:
    # given runs with an underscore and a percent sign in their ids and URLs
    await store.start_run(new_run("Scan_A", url=None), now=T0)
    await store.start_run(new_run("scan-b", url="https://ci.example/b?at=100%"), now=T0 + 1)
    await store.start_run(new_run("scanXc", url="https://ci.example/c?at=1000"), now=T0 + 2)
    await store.finish_run("acme", "scan-b", error=None, now=T0 + 3)

    async def ids(text: str, **kw: object) -> list[str]:
        filters = RunFilter(text=text, **kw)  # type: ignore[arg-type]
        return [
            r.workflow_id
            for r in (await store.list_runs("acme", filters, limit=5, cursor=None)).items
        ]

    # then the same rules as for results hold
    assert await ids("SCAN") == ["scanXc", "scan-b", "Scan_A"]
    assert await ids("scan_") == ["Scan_A"]
    assert await ids("100%") == ["scan-b"]
    assert await ids("CI.EXAMPLE/C") == ["scanXc"]
    assert await ids("scan", status=RunStatus.FINISHED) == ["scan-b"]
    assert (
        await store.list_runs("other", RunFilter(text="scan"), limit=5, cursor=None)
    ).items == ()


async def test_purge_removes_old_settled_runs_only(store: Store) -> None:
    await store.start_run(new_run("run-old-live"), now=T0)
    await store.start_run(new_run("run-old-done"), now=T0)
    await store.start_run(new_run("run-new-done"), now=T0 + 100)
    await store.finish_run("acme", "run-old-done", error=None, now=T0 + 1)
    await store.finish_run("acme", "run-new-done", error=None, now=T0 + 101)
    await store.purge(before=T0 + 50)
    page = await store.list_runs("acme", RunFilter(), limit=10, cursor=None)
    assert sorted(r.workflow_id for r in page.items) == ["run-new-done", "run-old-live"]


async def test_the_overview_counts_one_tenants_results_and_attempts_by_slot(store: Store) -> None:
    # given acme's results in each status, with attempts before and within the last hour, and
    # another tenant's result with an attempt in the same hour
    await store.accept(new("old-pending"), now=T0)
    await store.accept(new("new-pending"), now=T0 + 100)
    await store.accept(new("delivered"), now=T0)
    await deliver(store, "delivered", now=T0 + 3600)  # at the very end of the window
    await store.accept(new("orphaned"), now=T0)
    await store.record_attempt("acme", "orphaned", attempt(T0 - 10))  # before the window
    await store.record_attempt("acme", "orphaned", attempt(T0 + 30, "refused"))
    await store.record_attempt("acme", "orphaned", attempt(T0 + 40, "refused"))
    await store.orphan("acme", "orphaned", reason="refused", now=T0 + 40)
    await store.accept(replace(new("theirs"), tenant="other"), now=T0)
    await store.record_attempt("other", "theirs", attempt(T0 + 50, "refused"))
    await store.heartbeat("replica-a", now=T0 + 3000, ttl=1000)
    await store.pause_all(until=T0 + 4000)

    # when acme's overview of the hour from T0 is read, in minutes
    seen = await store.overview("acme", since=T0, slot_seconds=60, now=T0 + 3600)

    # then only acme's results count, and its attempts fall in their minutes
    assert seen.counts == {Status.PENDING: 2, Status.DELIVERED: 1, Status.ORPHANED: 1}
    assert seen.oldest_pending_at == T0
    assert [(a.slot, a.outcome, a.count) for a in seen.attempts] == [
        (0, AttemptOutcome.REFUSED, 2),
        (60, AttemptOutcome.DELIVERED, 1),
    ]
    assert (seen.replicas, seen.paused_until) == (1, T0 + 4000)
    # and a tenant without results sees zeros
    empty = await store.overview("nobody", since=T0, slot_seconds=60, now=T0 + 3600)
    assert empty.counts == dict.fromkeys(Status, 0)
    assert (empty.oldest_pending_at, empty.attempts) == (None, ())


async def test_kill_webhook_leaves_the_results_a_bot_may_still_take(store: Store) -> None:
    # given a tenant with a bot, one without, and results that name a channel, a requester or
    # neither
    await store.put_bot(
        BotConfig(tenant="acme", bot_id=BOT_ID, username="relay", token=BOT_TOKEN), now=T0
    )
    await store.accept(new("channel", channel_id=CHANNEL_ID), now=T0)
    await store.accept(new("requester", requester=Requester(user_id=BOT_ID)), now=T0)
    await store.accept(new("plain"), now=T0)
    await store.accept(new("no-bot", tenant="globex", channel_id=CHANNEL_ID), now=T0)
    # when the webhook dies
    killed = await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0 + 1)
    # then only the results no bot route can take are orphaned; the others stay queued
    assert killed == 2
    statuses = {}
    for tenant, workflow_id in [
        ("acme", "channel"),
        ("acme", "requester"),
        ("acme", "plain"),
        ("globex", "no-bot"),
    ]:
        record = await store.get_result(tenant, workflow_id)
        assert record is not None
        statuses[workflow_id] = record.status
    assert statuses == {
        "channel": Status.PENDING,
        "requester": Status.PENDING,
        "plain": Status.ORPHANED,
        "no-bot": Status.ORPHANED,
    }


async def test_each_redeliver_starts_a_new_delivery_round(store: Store) -> None:
    accepted = await store.accept(new("wf"), now=T0)
    assert accepted.record.delivery_round == 0
    assert (await store.get_result("acme", "wf")).delivery_round == 0  # type: ignore[union-attr]
    for expected in (1, 2):
        record = await store.redeliver("acme", "wf", destination=None, now=T0 + expected)
        assert record is not None and record.delivery_round == expected


async def test_a_webhooks_channel_is_remembered_and_the_latest_word_wins(store: Store) -> None:
    assert await store.webhook_channel(WEBHOOK_ID) is None
    await store.learn_webhook_channel(WEBHOOK_ID, CHANNEL_ID, now=T0)
    await store.learn_webhook_channel(WEBHOOK_ID, CHANNEL_ID, now=T0 + 1)
    assert await store.webhook_channel(WEBHOOK_ID) == CHANNEL_ID
    await store.learn_webhook_channel(WEBHOOK_ID, THREAD_ID, now=T0 + 2)  # moved
    assert await store.webhook_channel(WEBHOOK_ID) == THREAD_ID
    assert await store.webhook_channel(OTHER_WEBHOOK_ID) is None


async def test_a_result_for_a_dead_webhook_is_queued_when_a_bot_may_take_it(store: Store) -> None:
    # given a dead webhook, and a tenant with a bot
    await store.kill_webhook(WEBHOOK_ID, FAKE_TOKEN, reason="webhook_deleted", now=T0)
    await store.put_bot(
        BotConfig(tenant="acme", bot_id=BOT_ID, username="relay", token=BOT_TOKEN), now=T0
    )
    # when results arrive for it
    kept = await store.accept(new("channel", channel_id=CHANNEL_ID), now=T0 + 1)
    plain = await store.accept(new("plain"), now=T0 + 1)
    other = await store.accept(new("no-bot", tenant="globex", channel_id=CHANNEL_ID), now=T0 + 1)
    # then the one a bot route may take is queued, the others orphaned with the webhook's reason
    assert (kept.record.status, kept.record.orphan_reason) == (Status.PENDING, None)
    assert kept.record == await store.get_result("acme", "channel")
    for outcome in (plain, other):
        assert (outcome.record.status, outcome.record.orphan_reason) == (
            Status.ORPHANED,
            "webhook_deleted",
        )
