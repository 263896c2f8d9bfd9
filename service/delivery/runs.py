"""The run engine: a long run's conversation with its user, one step at a time.

A run is a row with a due time; the engine claims due runs with a lease (as the worker claims
lanes), does the next thing :func:`plan` says, and writes back what it did and when the run is
due again, in one commit that releases the lease. A restart or a crashed replica therefore loses
no timer: whoever claims the run next carries on from the row.

It runs in the delivery worker's process and asks the worker for every request's turn
(:class:`Turns`), so that a result and a progress edit to one webhook share its bucket and the
process-wide budget. A 429 is observed and the same request waits its turn again: it is never
lost and never counted as a failure.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from service.config import Settings
from service.delivery.turns import Priority
from service.discord.outcome import Disposition, SendOutcome
from service.discord.progress import (
    ProgressView,
    abandoned_payload,
    handoff_payload,
    progress_payload,
)
from service.discord.ratelimit import Bucket
from service.discord.render import Part
from service.discord.sender import Sender
from service.discord.snowflake import interaction_expires_at
from service.domain import Route, RunRecord, RunStatus, RunStep
from service.metrics import Metrics
from service.store import Store

log = logging.getLogger(__name__)

OLD_MESSAGE_EDITS = 30046  # edits to a message older than an hour are limited: post a new one
UNKNOWN_MESSAGE = 10008  # the progress message was deleted: post a new one
_STEPS_PER_CLAIM = 6  # hand-off, notice, first channel message... then let others have a turn


class Turns(Protocol):
    """The worker's rate-limit state, shared with the engine."""

    def turn(
        self, key: str, *, counts_globally: bool, priority: Priority = ...
    ) -> AbstractAsyncContextManager[Bucket]:
        """One request's turn on ``key``'s bucket (and the global budget), held until its
        answer was observed."""

    def observe(self, bucket: Bucket, outcome: SendOutcome) -> None:
        """Learn from an answer's rate-limit headers (and a 429)."""


# -- what to do next: pure ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EditOriginal:
    """Show the latest progress on the deferred response."""


@dataclass(frozen=True, slots=True)
class HandOff:
    """Edit the deferred response into the notice (when its token still works); progress moves
    to the channel."""


@dataclass(frozen=True, slots=True)
class PostProgress:
    """Post the channel progress message (a first one, or a fresh one)."""


@dataclass(frozen=True, slots=True)
class EditProgress:
    """Show the latest progress on the channel message."""


@dataclass(frozen=True, slots=True)
class ShowFinal:
    """Edit the progress message to the run's final state."""


@dataclass(frozen=True, slots=True)
class Abandon:
    """Nothing was heard for ``timeout_seconds``."""


@dataclass(frozen=True, slots=True)
class NotifyAbandoned:
    """Tell the user the run stopped without a result."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do before ``at`` (``None``: nothing until something arrives)."""

    at: float | None


Action = EditOriginal | HandOff | PostProgress | EditProgress | ShowFinal | Abandon
Plan = Action | NotifyAbandoned | Wait


def token_usable(run: RunRecord, *, now: float, margin: float) -> bool:
    if run.interaction is None:
        return False
    return now < interaction_expires_at(run.interaction.interaction_id) - margin


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)


def plan(run: RunRecord, *, now: float, margin: float) -> Plan:
    """The one next thing to do with ``run`` at ``now``."""
    channel = run.destination is not None and run.channel_dead is None
    on_original = run.progress_route is Route.INTERACTION
    on_channel = run.progress_route is Route.WEBHOOK and run.progress_message_id is not None
    live_token = token_usable(run, now=now, margin=margin)
    if run.status in (RunStatus.FINISHED, RunStatus.FAILED):
        if not run.final_shown and ((on_original and live_token) or (on_channel and channel)):
            return ShowFinal()
        return Wait(None)
    if run.status is RunStatus.ABANDONED:
        if not run.abandon_notified:
            return NotifyAbandoned()
        if on_channel and channel and not run.final_shown:
            return ShowFinal()
        return Wait(None)
    abandon_at = run.last_activity_at + run.timeout_seconds
    if now >= abandon_at:
        return Abandon()
    changed = run.progress_version > run.shown_version
    next_edit = run.next_edit_at or 0.0
    if run.status is RunStatus.RUNNING and run.interaction is not None:
        assert run.handoff_at is not None
        if live_token and now < run.handoff_at:
            if changed and now >= next_edit:
                return EditOriginal()
            expires = interaction_expires_at(run.interaction.interaction_id) - margin
            return Wait(
                _earliest(run.handoff_at, expires, abandon_at, next_edit if changed else None)
            )
        return HandOff()
    if not channel:
        return Wait(abandon_at)
    if not on_channel:
        return PostProgress()
    if changed and now >= next_edit:
        return EditProgress()
    return Wait(_earliest(abandon_at, next_edit if changed else None))


# -- doing it -----------------------------------------------------------------------------------


class _Refused(Exception):
    """Discord will not take this request (or the token or webhook is gone)."""

    def __init__(self, outcome: SendOutcome, *, channel: bool) -> None:
        super().__init__(outcome.error or "refused")
        self.outcome = outcome
        self.channel = channel  # on the channel webhook (else on the interaction's token)


class _Failed(Exception):
    """A 5xx, a timeout, a request without an answer: try again later."""


class _LeaseShort(Exception):
    """The turn came so late that the run's lease may run out during the request: save what
    was done and claim the run again, rather than let another replica act on it meanwhile."""


@dataclass(slots=True)
class _Doing:
    """A claimed run as the engine changes it, and what it learned on the way."""

    run: RunRecord
    coalesced: int = 0
    token_refused: bool = False
    retry_at: float | None = None
    claimed_at: float = 0.0


class RunEngine:
    def __init__(
        self,
        *,
        store: Store,
        sender: Sender,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float],
        turns: Turns,
        persist: Callable[[Callable[[], Awaitable[bool]]], Awaitable[bool]],
        rng: random.Random | None = None,
    ) -> None:
        self._store, self._sender, self._metrics = store, sender, metrics
        self._clock, self._turns, self._persist = clock, turns, persist
        self._rng = rng or random.Random()
        self._interval = settings.progress_interval_seconds
        self._margin = settings.interaction_margin_seconds
        self._lease = settings.lease_seconds
        self._base = settings.retry_base_seconds
        self._cap = settings.retry_cap_seconds
        self._max_failures = settings.max_attempts

    # -- one claimed run ------------------------------------------------------------------------
    async def work(self, owner: str, run: RunRecord) -> None:
        """Do what is due for ``run`` (claimed by ``owner``), then save it and release it."""
        doing = _Doing(run, claimed_at=self._clock())
        due: float | None = None
        destination = run.destination
        if destination is not None and run.channel_dead is None:
            # Dead for a result's delivery is dead for the run: no call goes there again.
            dead = await self._store.dead_reason(destination.webhook_id, destination.webhook_token)
            if dead is not None:
                doing.run = dataclasses.replace(run, channel_dead=dead)
        for _ in range(_STEPS_PER_CLAIM):
            now = self._clock()
            next_thing = plan(doing.run, now=now, margin=self._margin)
            if (
                doing.token_refused
                and doing.run.status is RunStatus.RUNNING
                and doing.run.interaction is not None
                and not isinstance(next_thing, Abandon)
            ):
                next_thing = HandOff()  # Discord refused the token: nothing more goes there
            if isinstance(next_thing, Wait):
                due = next_thing.at
                break
            try:
                await self._do(next_thing, doing)
                doing.run = dataclasses.replace(doing.run, failures=0)
            except _LeaseShort:
                due = self._clock()
                break
            except _Failed:
                failures = doing.run.failures + 1
                doing.run = dataclasses.replace(doing.run, failures=failures)
                if failures < self._max_failures:
                    due = self._backoff(failures)
                    break
                log.warning(
                    "giving up one run step after repeated failures",
                    extra={"workflow_id": run.workflow_id, "step": type(next_thing).__name__},
                )
                self._skip(next_thing, doing)
                doing.run = dataclasses.replace(doing.run, failures=0)
        else:
            due = self._clock()  # more to do: let other runs have a turn first
        final = doing.run
        step = RunStep(
            tenant=run.tenant,
            workflow_id=run.workflow_id,
            seen_version=run.progress_version,
            seen_status=run.status,
            status=final.status,
            shown_version=final.shown_version,
            progress_route=final.progress_route,
            progress_message_id=final.progress_message_id,
            next_edit_at=final.next_edit_at,
            final_shown=final.final_shown,
            abandon_notified=final.abandon_notified,
            channel_dead=final.channel_dead,
            coalesced=doing.coalesced,
            failures=final.failures,
            due_at=due,
        )
        saved = await self._persist(
            lambda: self._store.save_run_step(owner, step, now=self._clock())
        )
        if not saved:
            log.warning("run lease lost before its step was saved", extra={"run": run.workflow_id})
        if doing.coalesced:
            self._metrics.progress_coalesced.inc(doing.coalesced)
        if final.status is not run.status:
            self._metrics.runs.labels(final.status.value).inc()

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._cap, self._base * 2.0 ** min(failures, 30))
        return self._clock() + ceiling / 2 + self._rng.random() * ceiling / 2

    def _skip(self, action: Plan, doing: _Doing) -> None:
        """Leave out a step Discord will not take, so the run goes on with the next one."""
        run = doing.run
        match action:
            case EditOriginal() | EditProgress():
                doing.run = dataclasses.replace(run, shown_version=run.progress_version)
            case HandOff():
                doing.token_refused = True
                doing.run = dataclasses.replace(
                    run, status=RunStatus.HANDED_OFF, progress_route=None
                )
            case PostProgress():
                doing.run = dataclasses.replace(run, channel_dead=run.channel_dead or "refused")
            case ShowFinal():
                doing.run = dataclasses.replace(run, final_shown=True)
            case NotifyAbandoned():
                doing.run = dataclasses.replace(run, abandon_notified=True)

    async def _do(self, action: Plan, doing: _Doing) -> None:
        try:
            await self._act(action, doing)
        except _Refused as refused:
            outcome = refused.outcome
            if outcome.disposition is Disposition.DEAD_WEBHOOK and refused.channel:
                reason = "webhook_deleted" if outcome.discord_code == 10015 else "webhook_dead"
                doing.run = dataclasses.replace(doing.run, channel_dead=reason)
            elif outcome.disposition is Disposition.DEAD_WEBHOOK:
                doing.token_refused = True
                self._metrics.session_closed.labels("run").inc()
            log.warning(
                "Discord refused a run step",
                extra={
                    "workflow_id": doing.run.workflow_id,
                    "step": type(action).__name__,
                    "http_status": outcome.http_status,
                    "discord_code": outcome.discord_code,
                },
            )
            self._skip(action, doing)

    async def _act(self, action: Plan, doing: _Doing) -> None:
        run, now = doing.run, self._clock()
        match action:
            case EditOriginal():
                assert run.interaction is not None
                await self._edit_original(doing, progress_payload(self._view(run, now)))
                self._shown(doing, now, route=Route.INTERACTION, message_id=None)
            case HandOff():
                await self._hand_off(doing, now)
            case PostProgress():
                await self._post(doing, now)
            case EditProgress():
                try:
                    await self._edit_channel(doing, progress_payload(self._view(run, now)))
                except _Refused as refused:
                    if refused.outcome.discord_code not in (OLD_MESSAGE_EDITS, UNKNOWN_MESSAGE):
                        raise
                    await self._post(doing, now)
                    return
                self._shown(doing, now, route=Route.WEBHOOK, message_id=run.progress_message_id)
            case ShowFinal():
                await self._show_final(doing, now)
            case Abandon():
                doing.run = dataclasses.replace(run, status=RunStatus.ABANDONED)
                self._metrics.runs_abandoned.inc()
                log.info("run abandoned", extra={"workflow_id": run.workflow_id})
            case NotifyAbandoned():
                await self._notify_abandoned(doing, now)

    async def _hand_off(self, doing: _Doing, now: float) -> None:
        run = doing.run
        assert run.interaction is not None
        if not doing.token_refused and token_usable(run, now=now, margin=self._margin):
            notice = handoff_payload(
                workflow_id=run.workflow_id,
                title=run.title,
                where=self._where(run),
                view=self._view(run, now) if run.progress is not None else None,
            )
            await self._edit_original(doing, notice)
            self._metrics.progress_edits.labels(Route.INTERACTION.value).inc()
        elif not doing.token_refused:  # a refusal was counted when it came
            # Too late for a notice: the token ran out under a live run (a process was down).
            self._metrics.session_closed.labels("run").inc()
        self._metrics.handoffs.inc()
        log.info("run handed off", extra={"workflow_id": run.workflow_id})
        doing.run = dataclasses.replace(
            run, status=RunStatus.HANDED_OFF, progress_route=None, progress_message_id=None
        )

    async def _post(self, doing: _Doing, now: float) -> None:
        run = doing.run
        assert run.destination is not None
        outcome = await self._request(
            run.destination.lane,
            True,
            lambda: self._sender.execute(
                run.destination,  # type: ignore[arg-type]
                _part(progress_payload(self._view(run, now))),
            ),
            doing,
        )
        self._shown(doing, now, route=Route.WEBHOOK, message_id=outcome.message_id)

    async def _show_final(self, doing: _Doing, now: float) -> None:
        run = doing.run
        payload = progress_payload(self._view(run, now))
        if run.progress_route is Route.INTERACTION:
            await self._edit_original(doing, payload)
        else:
            try:
                await self._edit_channel(doing, payload)
            except _Refused as refused:
                if refused.outcome.discord_code not in (OLD_MESSAGE_EDITS, UNKNOWN_MESSAGE):
                    raise
                await self._post(doing, now)
        route = run.progress_route or Route.WEBHOOK
        self._metrics.progress_edits.labels(route.value).inc()
        doing.coalesced += max(run.progress_version - doing.run.shown_version, 0)
        doing.run = dataclasses.replace(
            doing.run, final_shown=True, shown_version=run.progress_version
        )

    async def _notify_abandoned(self, doing: _Doing, now: float) -> None:
        run = doing.run
        payload = abandoned_payload(
            workflow_id=run.workflow_id,
            title=run.title,
            silent_seconds=now - run.last_activity_at,
            mention_user_id=run.requester.user_id if run.requester else None,
        )
        # Before the hand-off the user looks at the deferred response: tell them there.
        if (
            run.handoff_at is not None
            and now < run.handoff_at
            and not doing.token_refused
            and token_usable(run, now=now, margin=self._margin)
        ):
            await self._edit_original(doing, payload)
            doing.run = dataclasses.replace(run, abandon_notified=True, final_shown=True)
            return
        if run.destination is not None and run.channel_dead is None:
            await self._request(
                run.destination.lane,
                True,
                lambda: self._sender.execute(run.destination, _part(payload)),  # type: ignore[arg-type]
                doing,
            )
        doing.run = dataclasses.replace(run, abandon_notified=True)

    def _shown(self, doing: _Doing, now: float, *, route: Route, message_id: str | None) -> None:
        run = doing.run
        doing.coalesced += max(run.progress_version - run.shown_version - 1, 0)
        self._metrics.progress_edits.labels(route.value).inc()
        doing.run = dataclasses.replace(
            run,
            shown_version=run.progress_version,
            progress_route=route,
            progress_message_id=message_id,
            next_edit_at=now + self._interval,
        )

    # -- requests -------------------------------------------------------------------------------
    async def _edit_original(self, doing: _Doing, payload: dict[str, object]) -> SendOutcome:
        run = doing.run
        interaction = run.interaction
        assert interaction is not None
        return await self._request(
            f"interaction:{interaction.interaction_id}",
            False,
            lambda: self._sender.edit_original(interaction, payload),
            doing,
        )

    async def _edit_channel(self, doing: _Doing, payload: dict[str, object]) -> SendOutcome:
        run = doing.run
        destination, message_id = run.destination, run.progress_message_id
        assert destination is not None and message_id is not None
        return await self._request(
            destination.lane,
            True,
            lambda: self._sender.edit_message(destination, message_id, payload),
            doing,
        )

    async def _request(
        self,
        key: str,
        counts_globally: bool,
        send: Callable[[], Awaitable[SendOutcome]],
        doing: _Doing,
    ) -> SendOutcome:
        """One request, sent again after each 429 once its bucket allows; raises
        :class:`_Refused` or :class:`_Failed` for what is not a success."""
        while True:
            # A result waiting for the same turn goes first: a progress edit only replaces the
            # one before it.
            async with self._turns.turn(
                key, counts_globally=counts_globally, priority=Priority.PROGRESS
            ) as bucket:
                if self._clock() - doing.claimed_at > self._lease / 2:
                    raise _LeaseShort
                outcome = await send()
                self._turns.observe(bucket, outcome)
            match outcome.disposition:
                case Disposition.DELIVERED:
                    return outcome
                case Disposition.RATE_LIMITED:
                    continue
                case Disposition.DEAD_WEBHOOK if counts_globally:
                    await self._kill_webhook(doing.run, outcome)
                    raise _Refused(outcome, channel=True)
                case Disposition.DEAD_WEBHOOK | Disposition.PERMANENT:
                    raise _Refused(outcome, channel=counts_globally)
                case _:
                    raise _Failed(outcome.error or outcome.disposition.value)

    async def _kill_webhook(self, run: RunRecord, outcome: SendOutcome) -> None:
        """The channel webhook is gone for this token: no run or result goes there again."""
        destination = run.destination
        assert destination is not None
        reason = "webhook_deleted" if outcome.discord_code == 10015 else "webhook_unauthorized"
        await self._persist(
            lambda: self._kill(destination.webhook_id, destination.webhook_token, reason)
        )
        log.warning(
            "a run's webhook is dead for its token; its channel messages stop",
            extra={"workflow_id": run.workflow_id, "reason": reason},
        )

    async def _kill(self, webhook_id: str, token: str, reason: str) -> bool:
        orphaned = await self._store.kill_webhook(
            webhook_id, token, reason=reason, now=self._clock()
        )
        self._metrics.persisted.labels(reason).inc(orphaned)
        return True

    # -- renderings -----------------------------------------------------------------------------
    def _view(self, run: RunRecord, now: float) -> ProgressView:
        progress = run.progress
        return ProgressView(
            workflow_id=run.workflow_id,
            title=run.title,
            stage=progress.stage if progress else None,
            current=progress.current if progress else None,
            total=progress.total if progress else None,
            note=progress.note if progress else None,
            elapsed_seconds=max(now - run.created_at, 0.0),
            state=run.status.value,
            error_stage=run.error_stage,
            error_message=run.error_message,
        )

    @staticmethod
    def _where(run: RunRecord) -> str:
        if run.destination is None:
            return "through `/retrieve_results` (it is kept for you)"
        return "as a new message in the results channel"


def _part(payload: dict[str, object]) -> Part:
    return Part(dict(payload))
