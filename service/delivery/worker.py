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
from dataclasses import dataclass, field
from typing import TypeVar

from service.clock import DatabaseClock
from service.config import Settings
from service.delivery.decide import (
    BOT_TOKEN_INVALID,
    INTERRUPTED,
    BotTokenDead,
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
from service.delivery.reconcile import (
    MAX_PAGES,
    find_marked,
    next_after,
    search_after,
    unanswered_since,
)
from service.delivery.retry import RetryPolicy
from service.delivery.routing import (
    BOT_ROUTES,
    bot_channel,
    choose_route,
    has_bot_target,
    interaction_usable,
)
from service.delivery.runs import RunEngine
from service.delivery.turns import Priority, PriorityLock
from service.discord.bot_sender import MESSAGES_PAGE, BotSender, dm_channel_id
from service.discord.marker import marker, message_nonce
from service.discord.outcome import Disposition, SendOutcome
from service.discord.ratelimit import Bucket, InvalidRequestWindow, TokenBucket, counts_as_invalid
from service.discord.render import Part, render_result
from service.discord.sender import Sender
from service.domain import (
    Attempt,
    AttemptOutcome,
    BotConfig,
    DeliveredMessage,
    ResultRecord,
    Route,
    RunRecord,
)
from service.errors import ResultGone, StoreError
from service.metrics import Metrics
from service.store import Store, describe_database
from service.store.base import token_hash

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
        bot_sender: BotSender | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._store, self._sender, self._metrics = store, sender, metrics
        self._bot_sender = bot_sender
        # What Discord taught about bot routes and webhooks, kept per process (bounded).
        self._dead_webhooks: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._dead_bots: set[str] = set()  # token hashes Discord answered 401
        self._dm_channels: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._webhook_channels: OrderedDict[str, str] = OrderedDict()
        self._route_buckets: dict[tuple[str, str], str] = {}
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
        self._global = _Budget(TokenBucket(rate=settings.global_rps, burst=_BUDGET_BURST))
        self._budget = self._global.bucket
        self._bot_budgets: dict[str, _Budget] = {}
        self._replicas = 1
        self._banned_until = 0.0  # a Cloudflare block: no request at all, with any token
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
            self._replicas = max(replicas, 1)
            self._budget.share(self._global_rps / self._replicas)
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
                self._replicas = max(replicas, 1)
                for budget in (self._global, *self._bot_budgets.values()):
                    budget.bucket.share(self._global_rps / self._replicas)
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
        """Send the parts not yet delivered; False when a webhook died on the way (its lane
        must be read again)."""
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
        trip = _Trip(record)
        lane_intact = True
        while True:
            if lane.lease_lost:
                raise _Stopped
            route = await self._route(trip)
            if route is None:
                await self._orphan(record, trip.last_refusal or _no_route(record))
                return lane_intact
            left = [i for i in range(len(parts)) if i not in done]
            if not left:
                await self._store.mark_delivered(
                    record.tenant, record.workflow_id, now=self._clock()
                )
                self._settled(record, "delivered", route)
                return lane_intact
            index = left[0]
            finished = len(left) == 1
            if route is Route.WEBHOOK and await self._reconciled(trip, parts, index, finished):
                done.add(index)
                if len(left) == 1:
                    self._settled(record, "delivered", route)
                    return lane_intact
                continue
            outcome = await self._send(trip, route, parts[index], index, lane)
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
                    message = DeliveredMessage(index, message_id, route, now)
                    await self._record_delivery(record, attempt, message, finished=finished)
                    done.add(index)
                    if route is Route.WEBHOOK:
                        await self._learn_channel(record, outcome)
                    if finished:
                        self._settled(record, "delivered", route)
                        self._metrics.latency.observe(max(now - record.created_at, 0.0))
                        return lane_intact
                case Resend():
                    await self._record(record, attempt)
                case FallBack(reason=reason):
                    trip.refuse(route, reason)
                    if route is Route.INTERACTION:
                        self._metrics.session_closed.labels("followup_refused").inc()
                    await self._record(record, attempt)
                case WebhookDead(reason=reason):
                    await self._record(record, attempt)
                    await self._kill_webhook(record, lane, reason, now)
                    trip.refuse(route, reason)
                    lane_intact = False
                    if not has_bot_target(record):
                        return False  # orphaned with the webhook's other results
                case BotTokenDead(reason=reason):
                    await self._record(record, attempt)
                    self._bot_refused(trip)
                    await self._orphan(record, reason, route)
                    return lane_intact
                case Orphan(reason=reason):
                    await self._record(record, attempt)
                    await self._orphan(record, reason, route)
                    return lane_intact
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
                    return lane_intact

    async def _route(self, trip: _Trip) -> Route | None:
        """``choose_route`` for this trip; the tenant's bot is read only once a bot route may be
        needed (a usable interaction or webhook never asks)."""
        record, now = trip.record, self._clock()
        if route := choose_route(record, now=now, margin=self._margin, refused=trip.refused):
            dead = await self._dead_reason(trip) if route is Route.WEBHOOK else None
            if dead is None:
                return route
            trip.refuse(Route.WEBHOOK, dead)
        bot = await self._bot(trip)
        route = choose_route(
            record,
            now=now,
            margin=self._margin,
            refused=trip.refused,
            bot_dm_default=bot.dm_fallback if bot is not None else None,
        )
        if route is None and trip.bot_dead and has_bot_target(record):
            trip.last_refusal = BOT_TOKEN_INVALID  # the bot would have been next
        return route

    async def _bot(self, trip: _Trip) -> BotConfig | None:
        """The tenant's bot, once per trip; ``None`` without one, or when Discord refused its
        token in this process."""
        if not trip.bot_read:
            trip.bot = None
            if self._bot_sender is not None:
                bot = await self._store.get_bot(trip.record.tenant)
                trip.bot_dead = bot is not None and token_hash(bot.token) in self._dead_bots
                if bot is not None and not trip.bot_dead:
                    trip.bot = bot
            trip.bot_read = True
        return trip.bot

    def _bot_refused(self, trip: _Trip) -> None:
        """Discord said 401 to the bot's token: no bot route for it in this process until the
        tenant gives a new one. Said once in the log (never the token)."""
        assert trip.bot is not None
        hashed = token_hash(trip.bot.token)
        if hashed not in self._dead_bots:
            self._dead_bots.add(hashed)
            log.error(
                "Discord refused the bot token: bot routes are off for this tenant until it "
                "sets a new one",
                extra={"tenant": trip.record.tenant, "bot_id": trip.bot.bot_id},
            )

    async def _dead_reason(self, trip: _Trip) -> str | None:
        """Why the result's webhook is dead for its token, or ``None``. Only a result a bot
        route may take can be queued for a dead webhook (kill_webhook and accept keep it): the
        store is asked for those, once per trip, unless this process saw the webhook die."""
        record = trip.record
        key = _webhook_key(record)
        if key in self._dead_webhooks:
            return self._dead_webhooks[key]
        if trip.webhook_checked or not has_bot_target(record):
            return None
        trip.webhook_checked = True
        assert record.destination is not None
        destination = record.destination
        return await self._store.dead_reason(destination.webhook_id, destination.webhook_token)

    async def _record_delivery(
        self,
        record: ResultRecord,
        attempt: Attempt,
        message: DeliveredMessage,
        *,
        finished: bool,
    ) -> None:
        """Keep a delivered part, kept trying: it records what Discord already did."""
        await self._persist(
            functools.partial(
                self._store.record_delivery,
                record.tenant,
                record.workflow_id,
                attempt,
                message,
                finished=finished,
                now=message.delivered_at,
            )
        )

    async def _learn_channel(self, record: ResultRecord, outcome: SendOutcome) -> None:
        """Remember the channel the webhook posts in (from the message it returned): where to
        look when a later send goes unanswered. Once per webhook and process."""
        assert record.destination is not None
        webhook_id = record.destination.webhook_id
        channel = outcome.body.get("channel_id") if outcome.body else None
        if record.destination.thread_id or not isinstance(channel, str):
            return  # a thread's messages are read in the thread, whose id is known
        if self._webhook_channels.get(webhook_id) == channel:
            return
        with contextlib.suppress(StoreError):
            await self._store.learn_webhook_channel(webhook_id, channel, now=self._clock())
            self._webhook_channels[webhook_id] = channel
            if len(self._webhook_channels) > _KNOWN_BUCKETS:
                self._webhook_channels.popitem(last=False)

    async def _reconciled(self, trip: _Trip, parts: list[Part], index: int, finished: bool) -> bool:
        """Before sending a webhook part again whose earlier send went unanswered: look for it
        in the channel with the tenant's bot. True when it was found and recorded delivered."""
        record = trip.record
        destination = record.destination
        assert destination is not None
        history = None
        if record.attempts > 0:
            history = await self._store.list_attempts(record.tenant, record.workflow_id)
        since = unanswered_since(record, history, index)
        if since is None or index in trip.reconciled:
            return False
        trip.reconciled.add(index)
        bot = await self._bot(trip)
        channel = destination.thread_id or await self._store.webhook_channel(destination.webhook_id)
        if bot is None or channel is None or self._bot_sender is None:
            return False
        line = marker(record.workflow_id, index, len(parts))
        after: str | None = search_after(since)
        started = time.perf_counter()
        for _ in range(MAX_PAGES):
            assert after is not None
            async with self.turn(
                self._bot_key(bot, "GET /channels/messages", channel), bot=bot.bot_id
            ) as bucket:
                page = await self._bot_sender.channel_messages(bot.token, channel, after=after)
                self._observe(bucket, page.outcome, bot=bot.bot_id)
            self._learn_bucket(bot, "GET /channels/messages", channel, page.outcome)
            if page.outcome.disposition is not Disposition.DELIVERED:
                log.info(
                    "could not read the webhook's channel; sending the part again",
                    extra={
                        "tenant": record.tenant,
                        "workflow_id": record.workflow_id,
                        "part": index,
                        "http_status": page.outcome.http_status,
                        "discord_code": page.outcome.discord_code,
                    },
                )
                return False
            found = find_marked(page.messages, webhook_id=destination.webhook_id, marker=line)
            if found is not None:
                await self._record_reconciled(record, index, found, started, finished=finished)
                return True
            after = next_after(page.messages)
            if len(page.messages) < MESSAGES_PAGE or after is None:
                return False
        return False

    async def _record_reconciled(
        self, record: ResultRecord, index: int, message_id: str, started: float, *, finished: bool
    ) -> None:
        now = self._clock()
        attempt = Attempt(
            at=now,
            route=Route.WEBHOOK,
            outcome=AttemptOutcome.RECONCILED,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            part=index,
            counts=False,
        )
        message = DeliveredMessage(index, message_id, Route.WEBHOOK, now)
        await self._record_delivery(record, attempt, message, finished=finished)
        self._metrics.reconciled.inc()
        log.info(
            "an unanswered part was found in the channel; not sent again",
            extra={"tenant": record.tenant, "workflow_id": record.workflow_id, "part": index},
        )

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
        """Orphan the webhook's pending results that have no bot route to fall back on; those
        that have one stay queued and are sent on without asking the webhook again."""
        destination = record.destination
        assert destination is not None
        self._dead_webhooks[_webhook_key(record)] = reason
        if len(self._dead_webhooks) > _KNOWN_BUCKETS:
            self._dead_webhooks.popitem(last=False)
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
        self, trip: _Trip, route: Route, part: Part, index: int, lane: _Lane
    ) -> SendOutcome:
        record = trip.record
        if route in BOT_ROUTES:
            return await self._send_as_bot(trip, route, part, index, lane)
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

    async def _send_as_bot(
        self, trip: _Trip, route: Route, part: Part, index: int, lane: _Lane
    ) -> SendOutcome:
        """Create Message with the tenant's bot, in the result's channel or (``DM``) in the
        requester's DM channel, opened first. The nonce makes a resend of a part Discord took
        (after a lost answer or a takeover) return that message instead of a second one."""
        record, bot, sender = trip.record, trip.bot, self._bot_sender
        assert bot is not None and sender is not None
        if route is Route.DM:
            opened = await self._dm_channel(trip, lane)
            if isinstance(opened, SendOutcome):
                return opened
            channel = opened
        else:
            found = bot_channel(record)
            assert found is not None
            channel = found
        nonce = message_nonce(
            tenant=record.tenant,
            workflow_id=record.workflow_id,
            created_at=record.created_at,
            delivery_round=record.delivery_round,
            part=index,
        )
        template = "POST /channels/messages"
        async with self.turn(self._bot_key(bot, template, channel), bot=bot.bot_id) as bucket:
            if lane.lease_lost:
                raise _Stopped
            await self._store.mark_in_flight(
                record.tenant, record.workflow_id, part=index, route=route, now=self._clock()
            )
            outcome = await sender.create_message(bot.token, channel, part, nonce=nonce)
            self._observe(bucket, outcome, bot=bot.bot_id)
        self._learn_bucket(bot, template, channel, outcome)
        return outcome

    async def _dm_channel(self, trip: _Trip, lane: _Lane) -> str | SendOutcome:
        """The requester's DM channel with the bot (Create DM, remembered per bot and user), or
        the answer that refused to open it."""
        record, bot, sender = trip.record, trip.bot, self._bot_sender
        assert bot is not None and sender is not None
        assert record.requester is not None and record.requester.user_id is not None
        user = record.requester.user_id
        known = self._dm_channels.get((bot.bot_id, user))
        if known is not None:
            return known
        template = "POST /users/@me/channels"
        async with self.turn(self._bot_key(bot, template, ""), bot=bot.bot_id) as bucket:
            if lane.lease_lost:
                raise _Stopped
            outcome = await sender.create_dm(bot.token, user)
            self._observe(bucket, outcome, bot=bot.bot_id)
        self._learn_bucket(bot, template, "", outcome)
        channel = dm_channel_id(outcome)
        if channel is None:
            return outcome
        self._dm_channels[(bot.bot_id, user)] = channel
        if len(self._dm_channels) > _KNOWN_BUCKETS:
            self._dm_channels.popitem(last=False)
        return channel

    def _bot_key(self, bot: BotConfig, template: str, major: str) -> str:
        """A bot route's bucket: Discord's bucket id for the route once an answer named it
        (routes may share one), else the route; per major parameter; per bot."""
        bucket = self._route_buckets.get((bot.bot_id, template), template)
        return f"bot:{bot.bot_id}:{bucket}:{major}"

    def _learn_bucket(
        self, bot: BotConfig, template: str, major: str, outcome: SendOutcome
    ) -> None:
        """Key the route by the bucket Discord named (``X-RateLimit-Bucket``), carrying over
        what the route's bucket knows."""
        named = outcome.rate_limit.bucket
        if not named or self._route_buckets.get((bot.bot_id, template)) == named:
            return
        old = self._bot_key(bot, template, major)
        self._route_buckets[(bot.bot_id, template)] = named
        new = self._bot_key(bot, template, major)
        if new not in self._buckets and old in self._buckets:
            self._buckets[new] = self._buckets[old]

    @contextlib.asynccontextmanager
    async def turn(
        self,
        key: str,
        *,
        counts_globally: bool = False,
        priority: Priority = Priority.RESULT,
        bot: str | None = None,
    ) -> AsyncIterator[Bucket]:
        """One request's turn on ``key``'s bucket, for a lane or a run: held until the answer
        was observed, so that the next request on the bucket knows what it said. A request with
        a bot token (``bot``: its id) takes a token of that bot's own budget instead of the
        global one. Raises ``_Stopped`` when the worker stops meanwhile or lost the fleet."""
        lock, bucket = await self._wait_turn(
            key, counts_globally=counts_globally, priority=priority, bot=bot
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
        self, key: str, *, counts_globally: bool, priority: Priority, bot: str | None = None
    ) -> tuple[PriorityLock, Bucket]:
        """Take ``key``'s turn once its bucket, a global pause and the invalid-request brake
        allow, with a token of the process-wide budget (interaction follow-ups do not count
        toward it); returns the turn, held, and the bucket.

        The turn is let go during every sleep and queued for again after it: a progress edit
        waiting for its bucket's window must not keep a result from the request the window
        still has for it. The checks run again after every sleep: a pause may have begun."""
        keep = _KEPT_FOR_RESULTS if priority is Priority.PROGRESS else 0
        budget = self._bot_budget(bot) if bot is not None else self._global
        has_token = not counts_globally and bot is None
        while True:
            lock = self._turn_locks.setdefault(key, PriorityLock())
            await lock.acquire(priority)
            try:
                while True:
                    bucket = self._bucket(key)
                    now = self._monotonic()
                    wait = max(
                        bucket.delay(now, keep=keep),
                        budget.bucket.paused_until - now,
                        self._banned_until - now,
                        self._invalid.delay(now),
                    )
                    if wait > 0 or has_token:
                        break
                    await self._take_budget(budget, priority)
                    has_token = True
                if wait <= 0:
                    bucket.spend(self._monotonic())
                    return lock, bucket
            except BaseException:
                lock.release()
                raise
            lock.release()
            await self._sleep(wait)

    async def _take_budget(self, budget: _Budget, priority: Priority) -> None:
        """One token of the global budget, first come first served within a priority (results
        before progress edits): the lanes queue on a fair lock, so that a lane unlucky with its
        wake-ups does not fall behind and end the burst alone, held back by its webhook's own
        limit."""
        async with budget.turn.hold(priority):
            while (wait := budget.bucket.take(self._monotonic())) > 0:
                await self._sleep(wait)

    def _bot_budget(self, bot: str) -> _Budget:
        """A bot's own global budget (Discord's 50 per second per bot token, with the same
        margin as the global one), shared by the replicas like the global one."""
        budget = self._bot_budgets.get(bot)
        if budget is None:
            budget = _Budget(TokenBucket(rate=self._global_rps, burst=_BUDGET_BURST))
            budget.bucket.share(self._global_rps / max(self._replicas, 1))
            self._bot_budgets[bot] = budget
        return budget

    def _observe(self, bucket: Bucket, outcome: SendOutcome, *, bot: str | None = None) -> None:
        now = self._monotonic()
        info = outcome.rate_limit
        bucket.observe(info, now)
        status = outcome.http_status
        if info.limited:
            self._metrics.rate_limited.labels(info.scope or "user").inc()
            if info.is_global and info.retry_after is not None and info.scope == "cloudflare":
                # The address is blocked: nothing goes out, with any token.
                self._banned_until = max(self._banned_until, now + info.retry_after)
            if info.is_global and info.retry_after is not None and bot is not None:
                # The bot's own global limit: only that bot's requests wait.
                self._bot_budget(bot).bucket.pause(now + info.retry_after)
            elif info.is_global and info.retry_after is not None:
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


@dataclass(slots=True)
class _Budget:
    """A budget of requests per second and the fair queue for its tokens."""

    bucket: TokenBucket
    turn: PriorityLock = field(default_factory=PriorityLock)


@dataclass(slots=True)
class _Trip:
    """One pass of a result through its routes: what was refused on the way, and the
    tenant's bot once read."""

    record: ResultRecord
    refused: set[Route] = field(default_factory=set)
    last_refusal: str | None = None
    bot: BotConfig | None = None
    bot_read: bool = False
    bot_dead: bool = False  # the tenant's bot token was refused (401) in this process
    webhook_checked: bool = False  # the store was asked whether the webhook is dead
    reconciled: set[int] = field(default_factory=set)  # parts looked for once already

    def refuse(self, route: Route, reason: str) -> None:
        self.refused.add(route)
        self.last_refusal = reason


def _no_route(record: ResultRecord) -> str:
    return "interaction_expired" if record.interaction is not None else "no_route"


def _webhook_key(record: ResultRecord) -> tuple[str, str]:
    assert record.destination is not None
    return record.destination.webhook_id, token_hash(record.destination.webhook_token)


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
        marked=True,
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
