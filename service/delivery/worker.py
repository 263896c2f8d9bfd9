"""The delivery worker: claims lanes, sends each result's parts in order, records every attempt.

A lane is one channel webhook (plus thread), or one interaction for results that have no
webhook. The worker holds a lease on each lane it works and renews it while working, so one
process at a time speaks to a webhook: its rate-limit state stays in one place and the parts of a
result arrive in order. A lease is only as good as its owner's heartbeat: a process that stops
beating (a crash) frees its lanes for the others within a few seconds.

What one answer means is :func:`service.delivery.decide.decide`'s business; this module only
chooses the route, sends, and carries the decision out. Three rules keep a failure from turning
into a resend:

- a part is marked in flight before it is sent, so a process that takes a lane over finds the
  parts that may have been posted and records them as ambiguous;
- whatever a send taught (a message id above all) is committed before anything else happens to
  the result, retried with backoff while the store refuses, with the lease kept meanwhile;
- after a store error, claiming backs off instead of taking the same lane again at once.

The sender never sleeps; this module does all the waiting, in one place (``_wait_turn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from service.clock import DatabaseClock
from service.config import Settings
from service.delivery.decide import (
    INTERRUPTED,
    Decision,
    FallBack,
    Orphan,
    Resend,
    RetryAt,
    Sent,
    WebhookDead,
    decide,
    interrupted,
)
from service.delivery.retry import RetryPolicy
from service.delivery.routing import choose_route, interaction_usable
from service.delivery.runs import RunEngine
from service.delivery.turns import Priority, PriorityLock
from service.discord.outcome import Disposition, SendOutcome
from service.discord.ratelimit import Bucket, InvalidRequestWindow, TokenBucket, counts_as_invalid
from service.discord.render import Part, render_result
from service.discord.sender import Sender
from service.domain import (
    Attempt,
    AttemptOutcome,
    DeliveredMessage,
    ResultRecord,
    Route,
    RunRecord,
)
from service.errors import ResultGone, StoreError
from service.metrics import Metrics
from service.store import Store, describe_database

log = logging.getLogger(__name__)
T = TypeVar("T")

_BATCH = 16  # due results read per round of a lane
_KNOWN_BUCKETS = 10_000  # rate-limit state kept for lanes not currently worked
_FLEET_SECONDS = 0.5  # how often a replica says it is alive and reads the fleet-wide pause
_FLEET_TTL = 3 * _FLEET_SECONDS  # a replica silent this long is gone: its lanes are free
_BUDGET_BURST = 3.0  # requests the global budget lets out at once
# Progress edits leave the last request of each bucket window to results: a result that arrives
# while edits fill a webhook's limit goes at once instead of after the window (up to 2 s).
_KEPT_FOR_RESULTS = 1
_STORE_RETRY_FIRST, _STORE_RETRY_CAP = 0.05, 5.0  # backoff while the store refuses a write


class _Stopped(Exception):
    """The worker is stopping (or lost the lane's lease): leave the result as it is."""


@dataclass(slots=True)
class _Lane:
    name: str
    lease_lost: bool = False


@dataclass(slots=True)
class _Backoff:
    """Exponential waiting after store errors; a success resets it."""

    delay: float = 0.0
    until: float = 0.0

    def failed(self, now: float) -> float:
        self.delay = min(max(self.delay * 2, _STORE_RETRY_FIRST), _STORE_RETRY_CAP)
        self.until = now + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay = self.until = 0.0


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        sender: Sender,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._store, self._sender, self._metrics = store, sender, metrics
        # Leases, heartbeats and due times are compared across replicas: database time.
        self._clock = clock if isinstance(clock, DatabaseClock) else DatabaseClock(clock)
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(
            base=settings.retry_base_seconds,
            cap=settings.retry_cap_seconds,
            max_attempts=settings.max_attempts,
            max_age=settings.max_retry_seconds,
            ambiguous_wait=settings.ambiguous_retry_seconds,
        )
        self._database = describe_database(settings.database_url)
        self._margin = settings.interaction_margin_seconds
        self._lease = settings.lease_seconds
        self._poll = settings.poll_seconds
        self._max_lanes = settings.worker_lanes
        self._max_parts = settings.max_parts
        # A small burst lets a caller that woke late catch up instead of losing its turn, and no
        # second holds more than the rate plus the burst (45 + 3 against Discord's 50): the rest
        # of the slack is for latency jitter.
        self._global_rps = settings.global_rps
        self._budget = TokenBucket(rate=settings.global_rps, burst=_BUDGET_BURST)
        self._budget_turn = PriorityLock()
        self._invalid = InvalidRequestWindow()
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        # One request at a time per bucket: a bucket knows what the last answer said, and a
        # second request sent before it arrives would spend a turn it cannot see (lanes and runs
        # share the buckets of their webhooks and interactions).
        self._turn_locks: dict[str, PriorityLock] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._claims = _Backoff()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._gauges_at = 0.0
        self._beat_at: float | None = None  # monotonic time of the last heartbeat that went in
        self._in_fleet = False
        self._background: set[asyncio.Task[None]] = set()
        # Runs share this worker's buckets and budget: a result and a progress edit to one
        # webhook never together exceed its limit.
        self._runs = RunEngine(
            store=store,
            sender=sender,
            settings=settings,
            metrics=metrics,
            clock=self._clock,
            turns=self,
            persist=self._persist,
            rng=self._rng,
        )
        self._run_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.alive = False

    # -- control ------------------------------------------------------------------------------
    def notify(self) -> None:
        """New work may be due: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Work until :meth:`stop`."""
        try:
            await self._store.subscribe(self.notify)  # another replica's accepts wake this one
        except StoreError:
            log.warning("could not listen for new work; polling only", exc_info=True)
        await self._sender.warm_up()
        # Beat before the first claim: a lease of an owner that never beat looks abandoned.
        replicas = await self._beat()
        self._in_fleet = True
        if replicas != 1:
            # Others run (or nobody could tell): send nothing for one heartbeat, so that the
            # replicas already running learn that the global budget is now shared by one more
            # before this one spends any of it.
            self._budget.pause(self._monotonic() + _FLEET_SECONDS)
        if replicas is not None:
            self._budget.share(self._global_rps / replicas)
        fleet = asyncio.create_task(self._keep_in_fleet(), name="fleet")
        self.alive = True
        log.info(
            "delivery worker started",
            extra={
                "database": self._database,
                "lanes": self._max_lanes,
                "owner": self.owner,
                "replicas": replicas,
            },
        )
        try:
            while not self._stop.is_set():
                await self._claim_available()
                await self._refresh_gauges()
                await self._idle()
        finally:
            self.alive = False
            self._in_fleet = False
            fleet.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fleet
            with contextlib.suppress(StoreError):
                await self._store.forget_replica(self.owner)
            log.info("delivery worker stopped", extra={"owner": self.owner})

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming, let each lane finish its request in flight, release the leases."""
        self._stop.set()
        self._wake.set()
        busy = [*self._lanes.values(), *self._run_tasks.values()]
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def drain(self, limit_seconds: float = 30.0) -> None:
        """Deliver everything due now and return once nothing is due (tests need no sleeps).

        Raises :class:`TimeoutError` when that takes longer than ``limit_seconds``.
        """
        deadline = self._monotonic() + limit_seconds
        if not self._in_fleet:
            await self._beat()
        while (left := deadline - self._monotonic()) > 0:
            await self._claim_available()
            busy = [*self._lanes.values(), *self._run_tasks.values()]
            if busy:
                await asyncio.wait(busy, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                continue
            due = await self._next_due()
            if due is None or due > self._clock():
                return
            # Due, but leased by another worker whose lease is running out, or claims back off.
            await asyncio.sleep(min(0.01, left))
        raise TimeoutError(f"drain did not finish within {limit_seconds:g} s")

    # -- the fleet ----------------------------------------------------------------------------
    async def _beat(self) -> int | None:
        """Say this replica is alive (and read the database's clock); how many replicas are."""
        try:
            await self._clock.sync(self._store)
            replicas = await self._store.heartbeat(self.owner, now=self._clock(), ttl=_FLEET_TTL)
        except StoreError:
            log.warning("fleet heartbeat failed; will try again", exc_info=True)
            return None
        self._beat_at = self._monotonic()
        return replicas

    def _fleet_lost(self) -> bool:
        """The last heartbeat is so old that the others may take this replica's lanes."""
        if not self._in_fleet:
            return False
        return self._beat_at is None or self._monotonic() - self._beat_at > _FLEET_TTL

    async def _keep_in_fleet(self) -> None:
        """Share the global budget with the live replicas, and honour a fleet-wide pause."""
        while True:
            replicas = await self._beat()
            if replicas is not None:
                self._budget.share(self._global_rps / max(replicas, 1))
                with contextlib.suppress(StoreError):
                    until = await self._store.paused_until()
                    if until > self._clock():
                        self._budget.pause(self._monotonic() + until - self._clock())
            await asyncio.sleep(_FLEET_SECONDS)

    # -- claiming -----------------------------------------------------------------------------
    async def _next_due(self) -> float | None:
        now = self._clock()
        due = [await self._store.next_due_at(now=now), await self._store.next_run_due_at(now=now)]
        return min((d for d in due if d is not None), default=None)

    async def _claim_available(self) -> None:
        await self._claim_lanes()
        await self._claim_runs()

    async def _claim_runs(self) -> None:
        while len(self._run_tasks) < self._max_lanes and not self._stop.is_set():
            if self._monotonic() < self._claims.until:
                return
            try:
                run = await self._store.claim_due_run(
                    self.owner, now=self._clock(), lease_seconds=self._lease
                )
            except StoreError:
                delay = self._claims.failed(self._monotonic())
                log.warning("claiming a run failed; trying again in %.2f s", delay, exc_info=True)
                return
            key = (run.tenant, run.workflow_id) if run is not None else None
            if run is None or key is None or key in self._run_tasks:
                return
            task = asyncio.create_task(self._work_run(run), name=f"run {run.workflow_id}")
            self._run_tasks[key] = task
            task.add_done_callback(functools.partial(self._run_finished, key))

    def _run_finished(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        self._run_tasks.pop(key, None)
        self._wake.set()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("run task crashed", extra={"workflow_id": key[1]}, exc_info=error)

    async def _work_run(self, run: RunRecord) -> None:
        try:
            await self._runs.work(self.owner, run)
        except _Stopped:
            pass  # the lease runs out (or the fleet forgets this replica) and the run resumes
        except StoreError:
            delay = self._claims.failed(self._monotonic())
            log.warning(
                "run step stopped on a store error; claiming again in %.2f s",
                delay,
                extra={"workflow_id": run.workflow_id},
                exc_info=True,
            )

    async def _claim_lanes(self) -> None:
        while len(self._lanes) < self._max_lanes and not self._stop.is_set():
            if self._monotonic() < self._claims.until:
                return  # the store failed us a moment ago: give it time
            try:
                name = await self._store.claim_lane(
                    self.owner, now=self._clock(), lease_seconds=self._lease
                )
            except StoreError:
                delay = self._claims.failed(self._monotonic())
                log.warning("claiming a lane failed; trying again in %.2f s", delay, exc_info=True)
                return
            if name is None or name in self._lanes:
                return  # nothing due, or a lane of ours whose lease ran out while we held it
            task = asyncio.create_task(self._work_lane(_Lane(name)), name=f"lane {name}")
            self._lanes[name] = task
            task.add_done_callback(functools.partial(self._lane_finished, name))

    def _lane_finished(self, name: str, task: asyncio.Task[None]) -> None:
        self._lanes.pop(name, None)
        self._wake.set()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("lane task crashed", extra={"lane": name}, exc_info=error)

    async def _idle(self) -> None:
        timeout = self._poll
        backoff = self._claims.until - self._monotonic()
        if backoff > 0:
            timeout = backoff  # new work cannot be claimed before then anyway
        else:
            with contextlib.suppress(StoreError):
                due = await self._next_due()
                if due is not None:
                    timeout = min(timeout, max(due - self._clock(), 0.0))
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _refresh_gauges(self) -> None:
        now = self._monotonic()
        if now - self._gauges_at < 1.0:
            return
        self._gauges_at = now
        with contextlib.suppress(StoreError):
            count, oldest = await self._store.count_pending()
            self._metrics.pending.set(count)
            self._metrics.oldest_pending_age.set(self._clock() - oldest if oldest else 0.0)

    # -- a lane -------------------------------------------------------------------------------
    async def _work_lane(self, lane: _Lane) -> None:
        keeper = asyncio.create_task(self._keep_lease(lane))
        try:
            while not self._stop.is_set() and not lane.lease_lost:
                due = await self._store.due_results(lane.name, now=self._clock(), limit=_BATCH)
                if not due:
                    break
                for record in due:
                    if self._stop.is_set() or lane.lease_lost:
                        break
                    if not await self._deliver_safely(record, lane):
                        break  # a webhook died and took results with it: read the lane again
            self._claims.succeeded()
        except _Stopped:
            pass
        except StoreError:
            delay = self._claims.failed(self._monotonic())
            log.warning(
                "lane stopped on a store error; claiming again in %.2f s",
                delay,
                extra={"lane": lane.name},
                exc_info=True,
            )
        finally:
            keeper.cancel()
            with contextlib.suppress(StoreError, asyncio.CancelledError):
                await self._store.release_lane(self.owner, lane.name)

    async def _keep_lease(self, lane: _Lane) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                held = await self._store.renew_lease(
                    self.owner, lane.name, now=self._clock(), lease_seconds=self._lease
                )
            except StoreError:
                continue  # the lease outlives a short outage; the next renewal may succeed
            if not held:
                log.warning("lease lost; leaving the lane", extra={"lane": lane.name})
                lane.lease_lost = True
                return

    # -- a result -----------------------------------------------------------------------------
    async def _deliver_safely(self, record: ResultRecord, lane: _Lane) -> bool:
        """``_deliver``, except that one result's surprise never stalls its lane."""
        try:
            return await self._deliver(record, lane)
        except (_Stopped, StoreError):
            raise
        except ResultGone:
            return True  # deleted through the API while it was being delivered
        except Exception:
            # A bug, not Discord: keep the result retrievable rather than retry it forever.
            log.exception(
                "delivery failed unexpectedly; result kept as orphaned",
                extra={"tenant": record.tenant, "workflow_id": record.workflow_id},
            )
            with contextlib.suppress(StoreError, ResultGone):
                await self._orphan(record, "internal_error")
            return True

    async def _deliver(self, record: ResultRecord, lane: _Lane) -> bool:
        """Send the parts not yet delivered; False when a webhook died on the way."""
        # One rendering for every route: a switch from the follow-up to the webhook halfway
        # through neither repeats nor drops a line, and the requester is mentioned once.
        parts = render_record(record, max_parts=self._max_parts)
        done = {message.part for message in record.messages}
        attempts = record.attempts
        if interrupted(record.in_flight, done):
            await self._record_interrupted(record, lane)
            attempts += 1
        if (
            record.interaction is not None
            and not record.messages
            and not interaction_usable(record, now=self._clock(), margin=self._margin)
        ):
            self._metrics.session_closed.labels("expired_before_send").inc()
        rejected = False
        while True:
            if lane.lease_lost:
                raise _Stopped
            route = choose_route(
                record, now=self._clock(), margin=self._margin, interaction_rejected=rejected
            )
            if route is None:
                reason = "interaction_rejected" if rejected else "interaction_expired"
                await self._orphan(record, reason)
                return True
            left = [i for i in range(len(parts)) if i not in done]
            if not left:
                await self._store.mark_delivered(
                    record.tenant, record.workflow_id, now=self._clock()
                )
                self._settled(record, "delivered", route)
                return True
            index = left[0]
            outcome = await self._send(record, route, parts[index], index, lane)
            now = self._clock()
            decision = decide(
                outcome,
                route=route,
                attempts=attempts,
                created_at=record.created_at,
                now=now,
                policy=self._policy,
                rng=self._rng,
            )
            attempt = _attempt(outcome, decision, route=route, part=index, at=now)
            attempts += decision.counts
            if not isinstance(decision, Sent):
                _log_failed(record, lane, attempt)
            # From here on every write is kept trying: it records what Discord already did.
            match decision:
                case Sent(message_id=message_id):
                    finished = len(left) == 1
                    message = DeliveredMessage(index, message_id, route, now)
                    await self._persist(
                        functools.partial(
                            self._store.record_delivery,
                            record.tenant,
                            record.workflow_id,
                            attempt,
                            message,
                            finished=finished,
                            now=now,
                        )
                    )
                    done.add(index)
                    if finished:
                        self._settled(record, "delivered", route)
                        self._metrics.latency.observe(max(now - record.created_at, 0.0))
                        return True
                case Resend():
                    await self._record(record, attempt)
                case FallBack():
                    rejected = True
                    self._metrics.session_closed.labels("followup_refused").inc()
                    await self._record(record, attempt)
                case WebhookDead(reason=reason):
                    await self._record(record, attempt)
                    await self._kill_webhook(record, lane, reason, now)
                    return False
                case Orphan(reason=reason):
                    await self._record(record, attempt)
                    await self._orphan(record, reason, route)
                    return True
                case RetryAt(at=at, error=error):
                    await self._record(record, attempt)
                    await self._persist(
                        functools.partial(
                            self._store.schedule_retry,
                            record.tenant,
                            record.workflow_id,
                            at=at,
                            error=error,
                            now=now,
                        )
                    )
                    return True

    async def _record_interrupted(self, record: ResultRecord, lane: _Lane) -> None:
        """Record the part a stopped process left in flight as an ambiguous attempt."""
        assert record.in_flight is not None
        attempt = Attempt(
            at=self._clock(),
            route=record.in_flight.route,
            outcome=AttemptOutcome.AMBIGUOUS,
            duration_ms=0.0,
            part=record.in_flight.part,
            error=INTERRUPTED,
            counts=True,
        )
        await self._store.record_attempt(record.tenant, record.workflow_id, attempt)
        self._metrics.ambiguous.inc()
        _log_failed(record, lane, attempt)

    async def _record(self, record: ResultRecord, attempt: Attempt) -> None:
        await self._persist(
            lambda: self._store.record_attempt(record.tenant, record.workflow_id, attempt)
        )

    async def _kill_webhook(
        self, record: ResultRecord, lane: _Lane, reason: str, now: float
    ) -> None:
        destination = record.destination
        assert destination is not None
        orphaned = await self._persist(
            lambda: self._store.kill_webhook(
                destination.webhook_id, destination.webhook_token, reason=reason, now=now
            )
        )
        self._metrics.persisted.labels(reason).inc(orphaned)
        self._metrics.deliveries.labels("orphaned", Route.WEBHOOK.value).inc(orphaned)
        log.warning(
            "webhook is dead for this token; its results are orphaned",
            extra={"lane": lane.name, "reason": reason, "orphaned": orphaned},
        )

    async def _orphan(self, record: ResultRecord, reason: str, route: Route | None = None) -> None:
        now = self._clock()
        await self._persist(
            lambda: self._store.orphan(record.tenant, record.workflow_id, reason=reason, now=now)
        )
        self._metrics.persisted.labels(reason).inc()
        self._settled(record, "orphaned", route)
        log.info(
            "result orphaned",
            extra={"tenant": record.tenant, "workflow_id": record.workflow_id, "reason": reason},
        )

    async def _persist(self, write: Callable[[], Awaitable[T]]) -> T:
        """Commit what a send taught, however long the store takes to accept it.

        The lane stays leased meanwhile (its keeper renews it as soon as the store lets it), so
        nobody sends the part again; only stopping the process ends the wait.
        """
        backoff = _Backoff()
        while True:
            try:
                result = await write()
            except StoreError:
                delay = backoff.failed(0.0)
                log.warning("could not record a delivery; trying again in %.2f s", delay)
                await asyncio.sleep(delay)
                continue
            return result

    def _settled(self, record: ResultRecord, outcome: str, route: Route | None) -> None:
        self._metrics.deliveries.labels(outcome, route.value if route else "none").inc()

    # -- one request --------------------------------------------------------------------------
    async def _send(
        self, record: ResultRecord, route: Route, part: Part, index: int, lane: _Lane
    ) -> SendOutcome:
        key = lane.name
        if route is Route.INTERACTION:
            assert record.interaction is not None
            key = f"interaction:{record.interaction.interaction_id}"
        async with self.turn(key, counts_globally=route is Route.WEBHOOK) as bucket:
            if lane.lease_lost:
                raise _Stopped  # another replica may be working this lane by now
            # Marked last, right before the request: a process that takes the lane over after a
            # crash knows this part may have been posted.
            await self._store.mark_in_flight(
                record.tenant, record.workflow_id, part=index, route=route, now=self._clock()
            )
            if route is Route.WEBHOOK:
                assert record.destination is not None
                outcome = await self._sender.execute(record.destination, part)
            else:
                assert record.interaction is not None
                outcome = await self._sender.follow_up(record.interaction, part)
            self._observe(bucket, outcome)
        return outcome

    @contextlib.asynccontextmanager
    async def turn(
        self, key: str, *, counts_globally: bool, priority: Priority = Priority.RESULT
    ) -> AsyncIterator[Bucket]:
        """One request's turn on ``key``'s bucket, for a lane or a run: held until the answer
        was observed, so that the next request on the bucket knows what it said. Raises
        ``_Stopped`` when the worker stops meanwhile or lost the fleet."""
        lock, bucket = await self._wait_turn(
            key, counts_globally=counts_globally, priority=priority
        )
        try:
            if self._fleet_lost():
                raise _Stopped  # another replica may be working this lane or run by now
            yield bucket
        finally:
            lock.release()

    def observe(self, bucket: Bucket, outcome: SendOutcome) -> None:
        """For the run engine: learn from an answer as a lane does."""
        self._observe(bucket, outcome)

    async def _wait_turn(
        self, key: str, *, counts_globally: bool, priority: Priority
    ) -> tuple[PriorityLock, Bucket]:
        """Take ``key``'s turn once its bucket, a global pause and the invalid-request brake
        allow, with a token of the process-wide budget (interaction follow-ups do not count
        toward it); returns the turn, held, and the bucket.

        The turn is let go during every sleep and queued for again after it: a progress edit
        waiting for its bucket's window must not keep a result from the request the window
        still has for it. The checks run again after every sleep: a pause may have begun."""
        keep = _KEPT_FOR_RESULTS if priority is Priority.PROGRESS else 0
        has_token = not counts_globally
        while True:
            lock = self._turn_locks.setdefault(key, PriorityLock())
            await lock.acquire(priority)
            try:
                while True:
                    bucket = self._bucket(key)
                    now = self._monotonic()
                    wait = max(
                        bucket.delay(now, keep=keep),
                        self._budget.paused_until - now,
                        self._invalid.delay(now),
                    )
                    if wait > 0 or has_token:
                        break
                    await self._take_budget(priority)
                    has_token = True
                if wait <= 0:
                    bucket.spend(self._monotonic())
                    return lock, bucket
            except BaseException:
                lock.release()
                raise
            lock.release()
            await self._sleep(wait)

    async def _take_budget(self, priority: Priority) -> None:
        """One token of the global budget, first come first served within a priority (results
        before progress edits): the lanes queue on a fair lock, so that a lane unlucky with its
        wake-ups does not fall behind and end the burst alone, held back by its webhook's own
        limit."""
        async with self._budget_turn.hold(priority):
            while (wait := self._budget.take(self._monotonic())) > 0:
                await self._sleep(wait)

    def _observe(self, bucket: Bucket, outcome: SendOutcome) -> None:
        now = self._monotonic()
        info = outcome.rate_limit
        bucket.observe(info, now)
        status = outcome.http_status
        if info.limited:
            self._metrics.rate_limited.labels(info.scope or "user").inc()
            if info.is_global and info.retry_after is not None:
                self._budget.pause(now + info.retry_after)
                self._pause_fleet(info.retry_after)
                log.warning(
                    "global rate limit: pausing all sends",
                    extra={"seconds": info.retry_after, "scope": info.scope},
                )
        if status is not None and counts_as_invalid(status, info.scope):
            self._invalid.add(now)
        if outcome.disposition is Disposition.AMBIGUOUS:
            self._metrics.ambiguous.inc()
        self._metrics.attempts.labels(_status_class(status)).inc()

    def _pause_fleet(self, seconds: float) -> None:
        """Tell the other replicas (they share the egress address, so the limit is theirs too)."""
        task = asyncio.create_task(self._store.pause_all(until=self._clock() + seconds))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _bucket(self, key: str) -> Bucket:
        bucket = self._buckets.pop(key, None) or Bucket()
        self._buckets[key] = bucket  # most recently used last
        if len(self._buckets) > _KNOWN_BUCKETS:
            old, _ = self._buckets.popitem(last=False)
            lock = self._turn_locks.get(old)
            if lock is not None and not lock.locked():
                del self._turn_locks[old]
        return bucket

    async def _sleep(self, seconds: float) -> None:
        """Sleep, unless the worker is told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        if self._stop.is_set():
            raise _Stopped


def render_record(record: ResultRecord, *, max_parts: int) -> list[Part]:
    """The messages that deliver ``record``: what Discord is sent, and what the dashboard shows."""
    return render_result(
        workflow_id=record.workflow_id,
        results=record.results,
        url=record.url,
        depth=record.depth,
        message=record.message,
        mention_user_id=record.requester.user_id if record.requester else None,
        max_parts=max_parts,
        error=record.error,
    )


def _attempt(
    outcome: SendOutcome, decision: Decision, *, route: Route, part: int, at: float
) -> Attempt:
    return Attempt(
        at=at,
        route=route,
        outcome=decision.outcome,
        duration_ms=outcome.duration_ms,
        part=part,
        http_status=outcome.http_status,
        discord_code=outcome.discord_code,
        error=outcome.error,
        counts=decision.counts,
    )


def _log_failed(record: ResultRecord, lane: _Lane, attempt: Attempt) -> None:
    # The lane names the webhook by id (and thread) only: never a token.
    log.warning(
        "delivery attempt failed",
        extra={
            "tenant": record.tenant,
            "workflow_id": record.workflow_id,
            "lane": lane.name,
            "route": attempt.route.value,
            "part": attempt.part,
            "outcome": attempt.outcome.value,
            "http_status": attempt.http_status,
            "discord_code": attempt.discord_code,
            "cause": attempt.error,
        },
    )


def _status_class(status: int | None) -> str:
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"
