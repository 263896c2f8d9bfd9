"""The delivery worker: claims lanes, sends each result's parts in order, records every attempt.

A lane is one channel webhook (plus thread), or one interaction for results that have no
webhook. The worker holds a lease on each lane it works and renews it while working, so one
process at a time speaks to a webhook: its rate-limit state stays in one place and the parts of a
result arrive in order. A result waiting for a retry goes back to the store with its next time
and does not hold up the rest of its lane. New results wake the worker at once (``notify``);
polling is only a backstop for retries coming due and for leases of crashed processes.

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
from collections.abc import Callable
from dataclasses import dataclass

from service.config import Settings
from service.delivery.retry import Disposition, RetryPolicy
from service.delivery.routing import choose_route, interaction_usable
from service.discord.ratelimit import Bucket, InvalidRequestWindow, TokenBucket, counts_as_invalid
from service.discord.render import Part, render_result
from service.discord.sender import Sender, SendOutcome
from service.domain import Attempt, DeliveredMessage, ResultRecord, Route
from service.errors import StoreError
from service.metrics import Metrics
from service.store import Store

log = logging.getLogger(__name__)

_BATCH = 16  # due results read per round of a lane
_KNOWN_BUCKETS = 10_000  # rate-limit state kept for lanes not currently worked
_FLEET_SECONDS = 0.5  # how often a replica says it is alive and reads the fleet-wide pause


class _Stopped(Exception):
    """The worker is stopping (or lost the lane's lease): leave the result as it is."""


@dataclass(slots=True)
class _Lane:
    name: str
    lease_lost: bool = False


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
        self._clock, self._monotonic = clock, monotonic
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(
            base=settings.retry_base_seconds,
            cap=settings.retry_cap_seconds,
            max_attempts=settings.max_attempts,
            max_age=settings.max_retry_seconds,
        )
        self._margin = settings.interaction_margin_seconds
        self._lease = settings.lease_seconds
        self._poll = settings.poll_seconds
        self._max_lanes = settings.worker_lanes
        # Evenly spaced, no bursts: requests that arrive bunched after a stall still leave the
        # slack between the budget (45/s) and Discord's limit (50/s) for latency jitter.
        self._global_rps = settings.global_rps
        self._budget = TokenBucket(rate=settings.global_rps, burst=1.0)
        self._invalid = InvalidRequestWindow()
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._gauges_at = 0.0
        self._background: set[asyncio.Task[None]] = set()
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
        # Send nothing for one heartbeat: the replicas already running learn that the global
        # budget is now shared by one more before this one spends any of it.
        self._budget.pause(self._monotonic() + _FLEET_SECONDS)
        fleet = asyncio.create_task(self._keep_in_fleet(), name="fleet")
        self.alive = True
        try:
            while not self._stop.is_set():
                await self._claim_available()
                await self._refresh_gauges()
                await self._idle()
        finally:
            self.alive = False
            fleet.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fleet
            with contextlib.suppress(StoreError):
                await self._store.forget_replica(self.owner)

    async def _keep_in_fleet(self) -> None:
        """Share the global budget with the live replicas, and honour a fleet-wide pause."""
        while True:
            try:
                replicas = await self._store.heartbeat(
                    self.owner, now=self._clock(), ttl=3 * _FLEET_SECONDS
                )
                self._budget.share(self._global_rps / max(replicas, 1))
                until = await self._store.paused_until()
                if until > self._clock():
                    self._budget.pause(self._monotonic() + until - self._clock())
            except StoreError:
                log.warning("fleet heartbeat failed; will try again", exc_info=True)
            await asyncio.sleep(_FLEET_SECONDS)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming, let each lane finish its request in flight, release the leases."""
        self._stop.set()
        self._wake.set()
        if self._lanes:
            _, late = await asyncio.wait(list(self._lanes.values()), timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def drain(self, limit_seconds: float = 30.0) -> None:
        """Deliver everything due now and return once nothing is due (tests need no sleeps)."""
        deadline = self._monotonic() + limit_seconds
        while self._monotonic() < deadline:
            await self._claim_available()
            if self._lanes:
                await asyncio.wait(list(self._lanes.values()), return_when=asyncio.FIRST_COMPLETED)
                continue
            due = await self._store.next_due_at(now=self._clock())
            if due is None or due > self._clock():
                return
            await asyncio.sleep(0.001)  # due but leased by another worker whose lease just ran out
        raise TimeoutError("drain did not finish in time")

    # -- claiming -----------------------------------------------------------------------------
    async def _claim_available(self) -> None:
        while len(self._lanes) < self._max_lanes and not self._stop.is_set():
            try:
                name = await self._store.claim_lane(
                    self.owner, now=self._clock(), lease_seconds=self._lease
                )
            except StoreError:
                log.warning("claiming a lane failed; will try again", exc_info=True)
                return
            if name is None:
                return
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
        with contextlib.suppress(StoreError):
            due = await self._store.next_due_at(now=self._clock())
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
                        return  # the webhook is dead: nothing more goes to it
        except _Stopped:
            pass
        except StoreError:
            log.warning("lane stopped on a store error", extra={"lane": lane.name}, exc_info=True)
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
        except LookupError:
            return True  # deleted through the API while it was being delivered
        except Exception:
            # A bug, not Discord: keep the result retrievable rather than retry it forever.
            log.exception(
                "delivery failed unexpectedly; result kept as orphaned",
                extra={"tenant": record.tenant, "workflow_id": record.workflow_id},
            )
            with contextlib.suppress(StoreError, LookupError):
                await self._orphan(record, "internal_error")
            return True

    async def _deliver(self, record: ResultRecord, lane: _Lane) -> bool:
        """Send the parts not yet delivered; False when the lane's webhook turned out dead."""
        done = {message.part for message in record.messages}
        attempts = record.attempts
        rejected = False
        rendered: dict[Route, list[Part]] = {}
        if (
            record.interaction is not None
            and not record.messages
            and not interaction_usable(record, now=self._clock(), margin=self._margin)
        ):
            self._metrics.session_closed.labels("expired_before_send").inc()
        while True:
            if lane.lease_lost:
                raise _Stopped
            route = choose_route(
                record, now=self._clock(), margin=self._margin, interaction_rejected=rejected
            )
            if route is None:
                await self._orphan(
                    record, "interaction_expired" if not rejected else "interaction_rejected"
                )
                return True
            parts = rendered.get(route) or rendered.setdefault(route, _render(record, route))
            left = [i for i in range(len(parts)) if i not in done]
            if not left:
                await self._store.mark_delivered(
                    record.tenant, record.workflow_id, now=self._clock()
                )
                self._settled(record, "delivered", route)
                return True
            index = left[0]
            outcome = await self._send(record, route, parts[index], lane)
            now = self._clock()
            attempt = Attempt(
                at=now,
                route=route,
                outcome=outcome.disposition.value,
                duration_ms=outcome.duration_ms,
                part=index,
                http_status=outcome.http_status,
                discord_code=outcome.discord_code,
                error=outcome.error,
                counts=outcome.disposition
                in (Disposition.TRANSIENT, Disposition.AMBIGUOUS, Disposition.PERMANENT)
                or (outcome.disposition is Disposition.DEAD_WEBHOOK and route is Route.WEBHOOK),
            )
            match outcome.disposition:
                case Disposition.DELIVERED:
                    finished = len(left) == 1
                    message = DeliveredMessage(index, outcome.message_id or "", route, now)
                    await self._store.record_delivery(
                        record.tenant, record.workflow_id, attempt, message,
                        finished=finished, now=now,
                    )  # fmt: skip
                    done.add(index)
                    if finished:
                        self._settled(record, "delivered", route)
                        self._metrics.latency.observe(max(now - record.created_at, 0.0))
                        return True
                case Disposition.RATE_LIMITED:
                    await self._store.record_attempt(record.tenant, record.workflow_id, attempt)
                case Disposition.DEAD_WEBHOOK if route is Route.INTERACTION:
                    # The token expired early or was refused: the channel webhook takes over now.
                    rejected = True
                    self._metrics.session_closed.labels("followup_refused").inc()
                    await self._store.record_attempt(record.tenant, record.workflow_id, attempt)
                case Disposition.DEAD_WEBHOOK:
                    await self._store.record_attempt(record.tenant, record.workflow_id, attempt)
                    reason = (
                        "webhook_deleted"
                        if outcome.discord_code == 10015
                        else "webhook_unauthorized"
                    )
                    orphaned = await self._store.kill_lane(lane.name, reason=reason, now=now)
                    self._metrics.persisted.labels(reason).inc(orphaned)
                    self._metrics.deliveries.labels("orphaned", route.value).inc(orphaned)
                    log.warning(
                        "webhook is dead; its results are orphaned",
                        extra={"lane": lane.name, "reason": reason, "orphaned": orphaned},
                    )
                    return False
                case Disposition.PERMANENT:
                    await self._store.record_attempt(record.tenant, record.workflow_id, attempt)
                    code = f"_{outcome.discord_code}" if outcome.discord_code else ""
                    await self._orphan(
                        record, f"discord_refused_{outcome.http_status}{code}", route
                    )
                    return True
                case Disposition.TRANSIENT | Disposition.AMBIGUOUS:
                    attempts += 1
                    await self._store.record_attempt(record.tenant, record.workflow_id, attempt)
                    await self._retry_later(record, outcome, attempts, now, route)
                    return True

    async def _retry_later(
        self, record: ResultRecord, outcome: SendOutcome, attempts: int, now: float, route: Route
    ) -> None:
        not_before = now + outcome.retry_not_before if outcome.retry_not_before else None
        at = self._policy.next_attempt(
            attempts=attempts, created_at=record.created_at, now=now, rng=self._rng,
            not_before=not_before,
        )  # fmt: skip
        if at is None:
            await self._orphan(record, "attempts_exhausted", route)
            return
        await self._store.schedule_retry(
            record.tenant, record.workflow_id, at=at, error=outcome.error or "", now=now
        )

    async def _orphan(self, record: ResultRecord, reason: str, route: Route | None = None) -> None:
        await self._store.orphan(
            record.tenant, record.workflow_id, reason=reason, now=self._clock()
        )
        self._metrics.persisted.labels(reason).inc()
        self._settled(record, "orphaned", route)
        log.info(
            "result orphaned",
            extra={"tenant": record.tenant, "workflow_id": record.workflow_id, "reason": reason},
        )

    def _settled(self, record: ResultRecord, outcome: str, route: Route | None) -> None:
        self._metrics.deliveries.labels(outcome, route.value if route else "none").inc()

    # -- one request --------------------------------------------------------------------------
    async def _send(
        self, record: ResultRecord, route: Route, part: Part, lane: _Lane
    ) -> SendOutcome:
        key = lane.name
        if route is Route.INTERACTION:
            assert record.interaction is not None
            key = f"interaction:{record.interaction.interaction_id}"
        bucket = self._bucket(key)
        await self._wait_turn(bucket, counts_globally=route is Route.WEBHOOK)
        if lane.lease_lost:
            raise _Stopped
        if route is Route.WEBHOOK:
            assert record.destination is not None
            outcome = await self._sender.execute(record.destination, part)
        else:
            assert record.interaction is not None
            outcome = await self._sender.follow_up(record.interaction, part)
        self._observe(bucket, outcome)
        return outcome

    async def _wait_turn(self, bucket: Bucket, *, counts_globally: bool) -> None:
        """Wait for the lane's bucket, a global pause and the invalid-request brake, and for a
        token of the process-wide budget (interaction follow-ups do not count toward it). The
        checks run again after every sleep: a pause may have begun meanwhile."""
        has_token = not counts_globally
        while True:
            now = self._monotonic()
            wait = max(bucket.delay(now), self._budget.paused_until - now, self._invalid.delay(now))
            if wait <= 0 and not has_token:
                wait, has_token = self._budget.take(now), True
            if wait <= 0:
                break
            await self._sleep(wait)
        bucket.spend(self._monotonic())

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
            self._buckets.popitem(last=False)
        return bucket

    async def _sleep(self, seconds: float) -> None:
        """Sleep, unless the worker is told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        if self._stop.is_set():
            raise _Stopped


def _render(record: ResultRecord, route: Route) -> list[Part]:
    # The requester is mentioned in the channel; in a follow-up they are already the addressee.
    mention = record.requester.user_id if record.requester and route is Route.WEBHOOK else None
    return render_result(
        workflow_id=record.workflow_id,
        results=record.results,
        url=record.url,
        depth=record.depth,
        message=record.message,
        mention_user_id=mention,
    )


def _status_class(status: int | None) -> str:
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"
