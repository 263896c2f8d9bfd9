"""``RelayClient``: the bot's async client for result-relay, with retries and the local spool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from bot_client._exceptions import (
    APIError,
    ConflictError,
    PayloadTooLargeError,
    RelayError,
    RelayUnavailable,
    SpoolError,
    UnserializableResult,
    ValidationError,
    error_from_response,
)
from bot_client._interaction import InteractionLike, InteractionRef, Requester
from bot_client._json import check_body, check_json
from bot_client._listing import every, list_params
from bot_client._models import (
    Attempt,
    BotInfo,
    Destination,
    DestinationInfo,
    DestinationInput,
    MessageInput,
    ResultPage,
    ResultRecord,
    ResultSubmission,
    ResultSummary,
    Run,
    RunCreate,
    RunFailure,
    RunPage,
    RunStatus,
    Status,
    as_destination,
)
from bot_client._redact import mask
from bot_client._retry import (
    RATE_LIMITED,
    RetryPolicy,
    parse_retry_after,
    retryable_status,
    transient,
)
from bot_client._run import RunHandle
from bot_client._spool import CorruptSpoolFile, FlushCounts, FlushReport, Spool, rejection_record

log = logging.getLogger("bot_client")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "result-relay-bot-client/0.1"
DEFAULT_RETRY = RetryPolicy()
# Refusals that will never change for this body: set the spool file aside instead of retrying.
_PERMANENT = (ConflictError, PayloadTooLargeError, ValidationError)
# The request never reached the service: safe to retry even a call that is not idempotent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

RetryMode = Literal["idempotent", "unsent"]
_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What became of a submission: ``accepted`` (new, 202), ``duplicate`` (the same body was
    taken before, 200) or ``spooled`` (the service was unreachable, busy or failing after the
    retries; the result is in ``path`` and ``flush_spool()`` sends it later). In no case is the
    result lost. When spooled, ``error`` says why (masked: no key or token), ``status_code`` is
    the last HTTP status (None without an answer) and ``error_code`` the error's code
    (``unavailable``, ``rate_limited``, ``http_502``...)."""

    status: Literal["accepted", "duplicate", "spooled"]
    workflow_id: str
    record: ResultRecord | None = None
    path: Path | None = None
    error: str | None = None  # why it was spooled
    status_code: int | None = None
    error_code: str | None = None

    @property
    def spooled(self) -> bool:
        return self.status == "spooled"


class RelayClient:
    """Talks to one result-relay service as one tenant.

        async with RelayClient("https://relay.example", api_key=KEY, spool_dir="spool") as relay:
            outcome = await relay.submit_result(workflow_id=..., results=..., destination=URL)

    ``retries``: a ``RetryPolicy`` or a number of attempts; connection errors, timeouts, 408,
    425, 429 and every 5xx are retried with backoff, honouring ``Retry-After`` (submitting is
    idempotent on ``workflow_id``). ``spool_dir``: where ``submit_result`` keeps what the
    service cannot take now. ``default_destination`` applies when a call names none.
    ``transport`` is for tests (``httpx.ASGITransport``, ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: RetryPolicy | int = DEFAULT_RETRY,
        spool_dir: str | os.PathLike[str] | None = None,
        default_destination: DestinationInput | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self._api_key = api_key
        self._retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy(attempts=retries)
        self.spool = Spool(spool_dir) if spool_dir is not None else None
        self.default_destination = (
            as_destination(default_destination) if default_destination is not None else None
        )
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
        )
        self._rng = random.Random()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"RelayClient({str(self._http.base_url)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.stop_spool_flusher()
        await self._http.aclose()

    # -- transport ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        retry: RetryMode = "idempotent",
        secrets: Iterable[str] = (),
        policy: RetryPolicy | None = None,
    ) -> httpx.Response:
        """One call with retries; a success answer, or the error translated once, here."""
        hidden = [self._api_key, *secrets]
        policy = policy or self._retry
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            try:
                response = await self._http.request(method, path, json=json, params=params)
            except httpx.TransportError as exc:
                error: RelayError = RelayUnavailable(
                    mask(f"{method} {path}: no answer from the relay ({exc!r})", hidden)
                )
                retryable = retry == "idempotent" or isinstance(exc, _NOT_SENT)
            else:
                if response.is_success:
                    return response
                status = response.status_code
                error = error_from_response(
                    status,
                    response.content,
                    reason=response.reason_phrase,
                    secrets=hidden,
                )
                retryable = retry == "idempotent" and retryable_status(status)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            rate_limited = status == RATE_LIMITED
            if retryable and not policy.waits_for(retry_after, rate_limited=rate_limited):
                # The service asks for a longer pause than a caller should be held for: give up
                # now and leave the result to the spool flusher, rather than ask again too soon.
                log.warning(
                    "relay asks to wait longer than the retry policy allows; giving up",
                    extra={"method": method, "path": path, "retry_after_s": retry_after},
                )
                retryable = False
            if not retryable or attempt >= policy.attempts:
                # Raised outside the except block on purpose: httpx's exception, which holds the
                # request and its Authorization header, is not chained to ours.
                raise error
            delay = policy.delay(
                attempt, retry_after=retry_after, rng=self._rng, rate_limited=rate_limited
            )
            log.warning(
                "relay call failed; retrying",
                extra={
                    "method": method,
                    "path": path,
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "status_code": status,
                    "error_code": error.code,
                },
            )
            await asyncio.sleep(delay)

    # -- results ------------------------------------------------------------------------------

    async def submit_result(
        self,
        *,
        workflow_id: str,
        results: Mapping[str, Any] | None = None,
        url: str | None = None,
        depth: str | None = None,
        message: MessageInput | None = None,
        destination: DestinationInput | None = None,
        interaction: InteractionRef | None = None,
        requester: Requester | None = None,
        error: RunFailure | Mapping[str, str] | None = None,
        channel_id: str | int | None = None,
        dm_fallback: bool | None = None,
    ) -> SubmitOutcome:
        """Hand a finished result to the service (see ``submit``). With ``error`` (``stage``,
        ``message``) it reports a failed run instead, ``results`` then being what there is of
        them (``{}`` by default); the service delivers it rendered as an error.

        ``channel_id``: a channel the tenant's bot (``set_bot``) posts in, alone or as the
        fallback after ``destination``'s webhook. ``dm_fallback``: whether the bot may send it
        to the requester in a DM when no channel takes it (None: the bot's default)."""
        if results is None:
            if error is None:
                raise TypeError("submit_result() needs results (or error, for a failed run)")
            results = {}
        # checked before pydantic sees them: it would answer a key that is not a string with an
        # error of its own that shows the value
        results = dict(results)
        check_json(results, "results")
        target = as_destination(destination) if destination is not None else None
        target = target or self.default_destination
        if channel_id is not None:
            target = (target or Destination()).model_copy(update={"channel_id": str(channel_id)})
        submission = ResultSubmission.model_validate(
            {
                "workflow_id": workflow_id,
                "results": results,
                "url": url,
                "depth": depth,
                "message": message,
                "destination": target,
                "interaction": interaction,
                "requester": requester,
                "error": error,
                "dm_fallback": dm_fallback,
            }
        )
        return await self.submit(submission)

    async def submit(self, submission: ResultSubmission) -> SubmitOutcome:
        """Submit; when the service stays unreachable, busy (408, 425, 429) or failing (5xx)
        after the retries, spool it (with a spool configured) instead of raising. 401, 409, 413
        and 422 raise at once. A result JSON cannot carry raises ``UnserializableResult`` before
        anything is sent or spooled."""
        body = submission.to_body()
        try:
            response = await self._request(
                "POST", "/v1/results", json=body, secrets=submission.secrets()
            )
        except RelayError as exc:
            if self.spool is None or not transient(exc):
                raise
            try:
                path = await asyncio.to_thread(self.spool.write, body)
            except OSError as write_error:
                raise SpoolError(
                    f"the relay is unavailable ({exc.code}) and the spool could not be written "
                    f"({write_error.__class__.__name__}: {write_error.strerror})"
                ) from None
            log.warning(
                "relay unavailable; result spooled",
                extra={
                    "workflow_id": submission.workflow_id,
                    "status_code": exc.status_code,
                    "error_code": exc.code,
                },
            )
            return SubmitOutcome(
                status="spooled",
                workflow_id=submission.workflow_id,
                path=path,
                error=str(exc),
                status_code=exc.status_code,
                error_code=exc.code,
            )
        return SubmitOutcome(
            status="accepted" if response.status_code == 202 else "duplicate",
            workflow_id=submission.workflow_id,
            record=_parse(ResultRecord, response),
        )

    async def hand_off(
        self,
        interaction: InteractionLike,
        *,
        workflow_id: str,
        results: Mapping[str, Any],
        destination: DestinationInput | None = None,
        url: str | None = None,
        depth: str | None = None,
        message: MessageInput | None = None,
    ) -> SubmitOutcome:
        """What a long command calls at its end: submit with the interaction (the service uses
        its follow-up while the token lasts) and its user as the requester; spool if needed.

        The interaction goes along even when its token has expired: the body must not depend on
        the time of the call, or a retry would become a 409 conflict."""
        return await self.submit_result(
            workflow_id=workflow_id,
            results=results,
            url=url,
            depth=depth,
            message=message,
            destination=destination,
            interaction=InteractionRef.from_interaction(interaction),
            requester=Requester.from_interaction(interaction),
        )

    async def get_result(self, workflow_id: str) -> ResultRecord:
        response = await self._request("GET", f"/v1/results/{_segment(workflow_id)}")
        return _parse(ResultRecord, response)

    async def list_page(
        self,
        *,
        status: Status | None = None,
        url: str | None = None,
        q: str | None = None,
        requester_id: str | int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ResultPage:
        """One page of results, newest first; pass ``next_cursor`` back for the next. ``url``
        is the whole URL; ``q`` (1-100 characters) is found anywhere in the workflow id or the
        URL, ASCII letters in either case, ``%`` and ``_`` as themselves."""
        params = list_params(status, url, q, requester_id, since, until, limit, cursor)
        response = await self._request("GET", "/v1/results", params=params)
        return _parse(ResultPage, response)

    async def list_results(
        self,
        *,
        status: Status | None = None,
        url: str | None = None,
        q: str | None = None,
        requester_id: str | int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[ResultSummary]:
        """Every matching result, newest first, fetching pages as the caller iterates."""
        async for item in every(
            lambda cursor: self.list_page(
                status=status,
                url=url,
                q=q,
                requester_id=requester_id,
                since=since,
                until=until,
                limit=page_size,
                cursor=cursor,
            )
        ):
            yield item

    async def list_attempts(self, workflow_id: str) -> list[Attempt]:
        response = await self._request("GET", f"/v1/results/{_segment(workflow_id)}/attempts")
        return _parse(_Attempts, response).items

    async def redeliver(
        self, workflow_id: str, destination: DestinationInput | None = None
    ) -> ResultRecord:
        """Deliver again (all parts), to ``destination`` or the result's own. Retried only when
        the request surely did not arrive: a second redeliver would post everything twice."""
        target = as_destination(destination) if destination is not None else None
        body = {"destination": target.model_dump(exclude_none=True)} if target else {}
        response = await self._request(
            "POST",
            f"/v1/results/{_segment(workflow_id)}/redeliver",
            json=body,
            retry="unsent",
            secrets=[target.webhook_url] if target and target.webhook_url else [],
        )
        return _parse(ResultRecord, response)

    async def delete_result(self, workflow_id: str) -> None:
        await self._request("DELETE", f"/v1/results/{_segment(workflow_id)}", retry="unsent")

    # -- runs ---------------------------------------------------------------------------------

    def run(
        self,
        interaction: InteractionLike | InteractionRef | None,
        *,
        workflow_id: str,
        destination: DestinationInput | None = None,
        requester: Requester | None = None,
        title: str | None = None,
        url: str | None = None,
        depth: str | None = None,
        timeout_seconds: int | None = None,
    ) -> RunHandle:
        """``async with relay.run(interaction, workflow_id=...) as run:`` around a long command:
        starts the run, sends ``run.progress(...)`` in the background, and submits
        ``run.finish(results)`` or, when the block fails, the failure (see ``RunHandle``).

        ``interaction`` is a discord.py ``Interaction`` (its user becomes the requester), an
        ``InteractionRef``, or None for a run that lives in ``destination`` only."""
        if isinstance(interaction, InteractionRef) or interaction is None:
            ref = interaction
        else:
            ref = InteractionRef.from_interaction(interaction)
            requester = requester or Requester.from_interaction(interaction)
        target = as_destination(destination) if destination is not None else None
        create = RunCreate(
            workflow_id=workflow_id,
            interaction=ref,
            destination=target or self.default_destination,
            requester=requester,
            url=url,
            depth=depth,
            title=title,
            timeout_seconds=timeout_seconds,
        )
        return RunHandle(self, create)

    async def start_run(self, run: RunCreate, *, policy: RetryPolicy | None = None) -> Run:
        """``POST /v1/runs``: a long run has started. Idempotent: the same body again answers
        the same run; another body for the same ``workflow_id`` raises ``ConflictError``."""
        response = await self._request(
            "POST", "/v1/runs", json=run.to_body(), secrets=run.secrets(), policy=policy
        )
        return _parse(Run, response)

    async def progress(
        self,
        workflow_id: str,
        stage: str,
        current: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> Run:
        """``PUT /v1/runs/{id}/progress``: the run's latest progress (latest wins). Raises
        ``NotFoundError`` for an unknown run and ``ConflictError`` (``run_closed``) once it has
        ended. ``RunHandle.progress`` is the variant that never raises nor waits."""
        body = {"stage": stage, "current": current, "total": total, "note": note}
        response = await self._request(
            "PUT",
            f"/v1/runs/{_segment(workflow_id)}/progress",
            json={k: v for k, v in body.items() if v is not None},
        )
        return _parse(Run, response)

    async def get_run(self, workflow_id: str) -> Run:
        response = await self._request("GET", f"/v1/runs/{_segment(workflow_id)}")
        return _parse(Run, response)

    async def list_run_page(
        self,
        *,
        status: RunStatus | None = None,
        url: str | None = None,
        q: str | None = None,
        requester_id: str | int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first; pass ``next_cursor`` back for the next. The filters
        are those of ``list_page``."""
        params = list_params(status, url, q, requester_id, since, until, limit, cursor)
        response = await self._request("GET", "/v1/runs", params=params)
        return _parse(RunPage, response)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        url: str | None = None,
        q: str | None = None,
        requester_id: str | int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Run]:
        """Every matching run, newest first, fetching pages as the caller iterates."""
        async for item in every(
            lambda cursor: self.list_run_page(
                status=status,
                url=url,
                q=q,
                requester_id=requester_id,
                since=since,
                until=until,
                limit=page_size,
                cursor=cursor,
            )
        ):
            yield item

    # -- destinations -------------------------------------------------------------------------

    async def put_destination(
        self, name: str, webhook_url: str, thread_id: str | int | None = None
    ) -> DestinationInfo:
        """Register (or replace) a named channel webhook; the service checks it with Discord."""
        body: dict[str, str] = {"webhook_url": webhook_url}
        if thread_id is not None:
            body["thread_id"] = str(thread_id)
        response = await self._request(
            "PUT", f"/v1/destinations/{_segment(name)}", json=body, secrets=[webhook_url]
        )
        return _parse(DestinationInfo, response)

    async def get_destination(self, name: str) -> DestinationInfo:
        response = await self._request("GET", f"/v1/destinations/{_segment(name)}")
        return _parse(DestinationInfo, response)

    async def list_destinations(self) -> list[DestinationInfo]:
        response = await self._request("GET", "/v1/destinations")
        return _parse(_Destinations, response).items

    async def delete_destination(self, name: str) -> None:
        await self._request("DELETE", f"/v1/destinations/{_segment(name)}", retry="unsent")

    # -- the tenant's bot -----------------------------------------------------------------------

    async def set_bot(self, token: str, *, dm_fallback: bool = False) -> BotInfo:
        """Give the service the tenant's bot token (checked with Discord first, stored
        encrypted, never shown again); ``dm_fallback``: the default for results that do not
        say whether a DM to the requester is allowed."""
        response = await self._request(
            "PUT",
            "/v1/bot",
            json={"token": token, "dm_fallback": dm_fallback},
            secrets=[token],
        )
        return _parse(BotInfo, response)

    async def get_bot(self) -> BotInfo:
        """The tenant's bot; ``NotFoundError`` (code ``no_bot``) when it has none."""
        return _parse(BotInfo, await self._request("GET", "/v1/bot"))

    async def delete_bot(self) -> None:
        await self._request("DELETE", "/v1/bot", retry="unsent")

    # -- spool --------------------------------------------------------------------------------

    def _require_spool(self) -> Spool:
        if self.spool is None:
            raise RuntimeError("this RelayClient has no spool_dir")
        return self.spool

    async def flush_spool(self) -> FlushReport:
        """Send every spooled submission, oldest first. A file goes only after a 2xx; a 409,
        413 or 422 moves it to ``rejected/`` with the error; an unreadable file goes to
        ``corrupt/``. Stops at the first sign that the service is down (or refuses the key) and
        leaves the rest for next time. Safe to interrupt at any point: resending is idempotent."""
        spool = self._require_spool()
        async with self._flush_lock:
            counts = FlushCounts()
            paths = await asyncio.to_thread(spool.pending)
            for index, path in enumerate(paths):
                try:
                    body = await asyncio.to_thread(spool.load, path)
                except FileNotFoundError:
                    continue  # another flusher (another process) sent it meanwhile
                except CorruptSpoolFile as exc:
                    await asyncio.to_thread(spool.set_aside, path)
                    counts.corrupt += 1
                    log.error(
                        "spool file is not a submission; moved to corrupt/",
                        extra={"file": path.name, "reason": str(exc)},
                    )
                    continue
                except OSError as exc:
                    await asyncio.to_thread(spool.set_aside, path)
                    counts.corrupt += 1
                    log.error(
                        "spool file unreadable; moved to corrupt/",
                        extra={"file": path.name, "reason": exc.__class__.__name__},
                    )
                    continue
                try:
                    check_body(body)  # e.g. NaN, spooled by an older client: never sendable
                except UnserializableResult as exc:
                    await asyncio.to_thread(spool.reject, path, body, rejection_record(exc))
                    counts.rejected += 1
                    log.error(
                        "spooled result is not faithful JSON; moved to rejected/",
                        extra={"workflow_id": body["workflow_id"], "error_code": exc.code},
                    )
                    continue
                try:
                    response = await self._request(
                        "POST", "/v1/results", json=body, secrets=_body_secrets(body)
                    )
                except _PERMANENT as exc:
                    await asyncio.to_thread(spool.reject, path, body, rejection_record(exc))
                    counts.rejected += 1
                    log.error(
                        "spooled result refused by the relay; moved to rejected/",
                        extra={"workflow_id": body["workflow_id"], "error_code": exc.code},
                    )
                    continue
                except RelayError as exc:
                    remaining = len(paths) - index
                    log.warning(
                        "spool flush stopped; files kept for the next flush",
                        extra={"remaining": remaining, "error_code": exc.code},
                    )
                    return counts.report(remaining=remaining, error=str(exc))
                await asyncio.to_thread(spool.remove, path)
                if response.status_code == 202:
                    counts.accepted += 1
                else:
                    counts.duplicate += 1
            return counts.report()

    def start_spool_flusher(self, interval: float = 30.0) -> asyncio.Task[None]:
        """Flush now and then every ``interval`` seconds, in the background, until stopped."""
        self._require_spool()
        if self._flusher is not None and not self._flusher.done():
            raise RuntimeError("the spool flusher is already running")
        self._flusher = asyncio.create_task(self._flush_forever(interval), name="relay-spool")
        return self._flusher

    async def stop_spool_flusher(self) -> None:
        """Stop the background flusher; a flush in progress is cut short, losing nothing."""
        task, self._flusher = self._flusher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def spool_flusher(self, interval: float = 30.0) -> AsyncIterator[asyncio.Task[None]]:
        """``async with relay.spool_flusher(30):`` runs the background flusher inside."""
        task = self.start_spool_flusher(interval)
        try:
            yield task
        finally:
            await self.stop_spool_flusher()

    async def _flush_forever(self, interval: float) -> None:
        while True:
            try:
                report = await self.flush_spool()
            except Exception as exc:  # one bad flush must not end the flusher
                log.error(
                    "spool flush failed",
                    extra={"error_type": exc.__class__.__name__},
                )
            else:
                if report.sent or report.rejected or report.corrupt:
                    log.info(
                        "spool flushed",
                        extra={
                            "accepted": report.accepted,
                            "duplicate": report.duplicate,
                            "rejected": report.rejected,
                            "corrupt": report.corrupt,
                            "remaining": report.remaining,
                        },
                    )
            await asyncio.sleep(interval)


class _Attempts(BaseModel):
    items: list[Attempt]


class _Destinations(BaseModel):
    items: list[DestinationInfo]


def _parse(model: type[_Model], response: httpx.Response) -> _Model:
    """The answer as ``model``; a success answer of another shape (a proxy's page, a service of
    another version) is an ``APIError``, not a crash deep in pydantic."""
    try:
        return model.model_validate_json(response.content)
    except PydanticValidationError as exc:
        raise APIError(
            f"unexpected answer to {response.request.method} {response.request.url.path} "
            f"({exc.error_count()} fields did not match)",
            status_code=response.status_code,
            code="unexpected_response",
        ) from None


def _segment(value: str) -> str:
    return quote(value, safe="")


def _body_secrets(body: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    destination = body.get("destination")
    if isinstance(destination, Mapping) and isinstance(destination.get("webhook_url"), str):
        found.append(destination["webhook_url"])
    interaction = body.get("interaction")
    if isinstance(interaction, Mapping) and isinstance(interaction.get("token"), str):
        found.append(interaction["token"])
    return found
