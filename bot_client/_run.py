"""``RunHandle``: one long command's run, from its start to its result, around the bot's work.

The relay must never hold the bot's work up nor fail it: the start is tried once on entry (and
again in the background if the relay is away), progress goes through one background task where
the latest update wins, and only the end (the result, or the failure) is awaited, with the spool
behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from bot_client._exceptions import NotFoundError, RelayError, UnserializableResult
from bot_client._json import check_json
from bot_client._models import MessageInput, RunCreate, RunFailure
from bot_client._redact import redact
from bot_client._retry import NO_RETRY, transient

if TYPE_CHECKING:
    from bot_client._client import RelayClient, SubmitOutcome

log = logging.getLogger("bot_client")

FIRST_STAGE = "start"  # the stage of a run that fails before its first progress
NO_RESULT = "ended without a result"
MAX_STAGE = 100  # the service's limits for ``error``
MAX_MESSAGE = 300  # shorter than the service's 2000: one line a user reads, not a log
# The run is gone or the key is refused: no later update of this run can be taken either.
_FINAL_REFUSALS = frozenset({401, 403, 404, 409})


@dataclass(frozen=True, slots=True)
class _Update:
    stage: str
    current: int | None
    total: int | None
    note: str | None


class RunHandle:
    """What ``async with relay.run(...) as run:`` gives the block.

    - ``await run.progress(stage, current, total, note=None)`` returns at once and never raises
      for the relay's sake: a background task sends the latest update (updates that arrive
      while one is in flight replace each other: ``progress_dropped`` counts them), with the
      client's retries. A refusal (a 4xx other than 408/425/429) is logged once.
    - ``run.partial(results)`` keeps results gathered so far (merged), sent if the run fails.
    - ``await run.finish(results, message=...)`` submits the result like ``submit_result``
      (spooled if the relay is down) and returns its ``SubmitOutcome``.
    - An exception leaving the block reports the failure (the last stage, the exception's type
      and a short redacted message, the partial results) and goes on. Leaving without
      ``finish`` and without an exception reports a failure ``"ended without a result"``. A
      cancelled task reports nothing: the relay marks the run abandoned after its timeout.

    Entering raises only when the relay refuses the run itself (401, 409 for another run with
    this ``workflow_id``, 422); a relay that cannot be reached or is busy does not stop the
    block, and the start is retried in the background before the next progress. A relay too
    old to know runs (404) gets no progress, only the result.
    """

    def __init__(self, client: RelayClient, create: RunCreate) -> None:
        self._client = client
        self._create = create
        self.workflow_id = create.workflow_id
        self.started = False  # the relay has the run
        self.stage: str | None = None  # the last stage the bot reported
        self.outcome: SubmitOutcome | None = None  # the result's or failure's submission
        self.progress_sent = 0
        self.progress_dropped = 0  # replaced by a later update before they could go
        self.progress_failed = 0
        self._partial: dict[str, Any] = {}
        self._pending: _Update | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._entered = False
        self._stopped = False  # no more progress goes out
        self._done = False  # the end of the run reached the relay (or the spool)
        self._refusal_logged = False

    def __repr__(self) -> str:
        return f"RunHandle({self.workflow_id!r}, started={self.started}, stage={self.stage!r})"

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a run is entered once")
        self._entered = True
        try:
            # One try: the bot's work waits for nothing longer; the retries go on in the
            # background.
            await self._client.start_run(self._create, policy=NO_RETRY)
        except NotFoundError:
            # A relay older than runs: the block goes on without progress, the result still goes.
            log.warning(
                "this relay does not know runs; the run goes on without progress",
                extra={"workflow_id": self.workflow_id},
            )
            self._stopped = True
        except RelayError as exc:
            if not transient(exc):
                raise
            log.warning(
                "relay unavailable; the run goes on and its start is retried in the background",
                extra={"workflow_id": self.workflow_id, "error_code": exc.code},
            )
            self._kick()
        else:
            self.started = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()
        if self._done:
            return
        if exc is None:
            message = NO_RESULT
        elif isinstance(exc, Exception):
            message = describe(exc, self._secrets())
        else:
            return  # cancelled or interrupted: waiting on the relay now would hold that up
        self._done = True
        stage = (self.stage or "").strip()[:MAX_STAGE] or FIRST_STAGE
        try:
            self.outcome = await self._submit(
                results=self._partial, error=RunFailure(stage=stage, message=message)
            )
        except Exception as report_error:
            # Never instead of the bot's own exception, nor as a new one after a clean block.
            log.error(
                "the run's failure could not be reported to the relay",
                extra={
                    "workflow_id": self.workflow_id,
                    "error_type": type(report_error).__name__,
                    "error_code": getattr(report_error, "code", None),
                },
            )

    async def progress(
        self,
        stage: str,
        current: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> None:
        """Show where the run is; returns at once, never raises for the relay's sake."""
        if not self._entered:
            raise RuntimeError("run.progress() belongs inside `async with relay.run(...)`")
        self.stage = stage
        if self._stopped:
            return
        if self._pending is not None:
            self.progress_dropped += 1
        self._pending = _Update(stage, current, total, note)
        self._kick()

    def partial(self, results: Mapping[str, Any]) -> None:
        """Results so far, merged into those given before; sent with a failure report. Checked
        now (``UnserializableResult``), so that the failure report cannot fail on them."""
        results = dict(results)
        check_json(results, "results")
        self._partial.update(results)

    async def finish(
        self,
        results: Mapping[str, Any],
        *,
        message: MessageInput | None = None,
        url: str | None = None,
        depth: str | None = None,
    ) -> SubmitOutcome:
        """Submit the result (the run's interaction, destination and requester go along); a
        pending progress update is dropped. Raises as ``submit_result`` does."""
        if self._done:
            raise RuntimeError("this run has already ended")
        await self._stop()
        try:
            outcome = await self._submit(results=results, message=message, url=url, depth=depth)
        except UnserializableResult:
            raise  # nothing was sent: leaving the block reports the failure
        except BaseException:
            self._done = True  # the relay saw the result: a failure report would contradict it
            raise
        self._done = True
        self.outcome = outcome
        return outcome

    # -- the background sender ----------------------------------------------------------------

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send_forever(), name="relay-run-progress")

    async def _send_forever(self) -> None:
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            try:
                if not self.started and not await self._start():
                    continue  # the update waits for the next progress call (latest wins)
                update, self._pending = self._pending, None
                if update is not None:
                    await self._send(update)
            except Exception as exc:  # e.g. the client closed under a run: the work goes on
                self.progress_failed += 1
                log.error(
                    "run progress sender failed",
                    extra={"workflow_id": self.workflow_id, "error_type": type(exc).__name__},
                )

    async def _start(self) -> bool:
        try:
            await self._client.start_run(self._create)
        except RelayError as exc:
            if transient(exc):
                log.warning(
                    "relay still unavailable; the run's start is retried with its next progress",
                    extra={"workflow_id": self.workflow_id, "error_code": exc.code},
                )
            else:
                self._refused(exc)
                self._stopped = True
            return False
        self.started = True
        return True

    async def _send(self, update: _Update) -> None:
        try:
            await self._client.progress(
                self.workflow_id, update.stage, update.current, update.total, update.note
            )
        except RelayError as exc:
            self.progress_failed += 1
            if transient(exc):
                log.warning(
                    "run progress not sent; the next update replaces it",
                    extra={"workflow_id": self.workflow_id, "error_code": exc.code},
                )
            else:
                self._refused(exc)
                if exc.status_code in _FINAL_REFUSALS:
                    self._stopped = True
        else:
            self.progress_sent += 1

    def _refused(self, exc: RelayError) -> None:
        if self._refusal_logged:
            return
        self._refusal_logged = True
        log.warning(
            "relay refused the run's progress; the run goes on without it",
            extra={
                "workflow_id": self.workflow_id,
                "status_code": exc.status_code,
                "error_code": exc.code,
                "error": str(exc),
            },
        )

    async def _stop(self) -> None:
        self._stopped = True
        if self._pending is not None:
            self.progress_dropped += 1
            self._pending = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than awaiting the task: a cancellation of the bot's own task, arriving
            # meanwhile, must reach it instead of being taken for the sender's.
            await asyncio.wait([task])

    # -- the end ------------------------------------------------------------------------------

    async def _submit(
        self,
        *,
        results: Mapping[str, Any],
        message: MessageInput | None = None,
        url: str | None = None,
        depth: str | None = None,
        error: RunFailure | None = None,
    ) -> SubmitOutcome:
        # The result carries the run's interaction, destination and requester itself: it must
        # stand alone when the run never reached the relay, and its body must not depend on that.
        create = self._create
        return await self._client.submit_result(
            workflow_id=self.workflow_id,
            results=results,
            url=url or create.url,
            depth=depth or create.depth,
            message=message,
            destination=create.destination,
            interaction=create.interaction,
            requester=create.requester,
            error=error,
        )

    def _secrets(self) -> list[str]:
        return [self._client._api_key, *self._create.secrets()]


def describe(exc: BaseException, secrets: list[str]) -> str:
    """A failure as one short line for the user: the type's name and its message, with
    whatever looks like a token or webhook URL masked; never a traceback."""
    name = type(exc).__name__
    try:
        text = " ".join(str(exc).split())
    except Exception:  # a broken __str__ must not stop the report
        text = ""
    line = redact(f"{name}: {text}" if text else name, secrets)
    if len(line) > MAX_MESSAGE:
        line = line[: MAX_MESSAGE - 1] + "…"
    return line
