"""The PostgreSQL store: several replicas of the service on one database.

An asyncpg pool serves every method; each statement is prepared once per connection by asyncpg's
statement cache. ``accept`` is one statement and one round trip. Lanes are claimed with
``FOR UPDATE SKIP LOCKED`` and leases. New work is announced with ``NOTIFY`` inside the
committing transaction and heard on a dedicated ``LISTEN`` connection that reconnects when lost.
The SQL lives in :mod:`service.store.postgres_queries`; driver errors become
:class:`StoreError` here, with messages that never carry a value (nor so a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

import asyncpg

from service.crypto import TokenCipher
from service.domain import (
    AcceptOutcome,
    ApiKey,
    Attempt,
    BotConfig,
    DeliveredMessage,
    Destination,
    NewResult,
    NewRun,
    Page,
    Progress,
    ResultFilter,
    ResultRecord,
    Route,
    RunFilter,
    RunPage,
    RunRecord,
    RunStart,
    RunStep,
    Status,
    TenantOverview,
)
from service.errors import InvalidRequest, ResultGone, StoreError
from service.store import postgres_queries as q
from service.store.base import (
    RESEAL_BATCH,
    SEALED_COLUMNS,
    Row,
    SealedColumn,
    Store,
    WorkListeners,
    accepted_record,
    api_key_from_row,
    attempt_from_row,
    bot_from_row,
    bot_params,
    check_destination_alive,
    check_key_ids,
    check_same_body,
    destination_from_row,
    destination_token,
    listing_filters,
    overview_from_rows,
    page_of,
    progress_json,
    record_from_row,
    redelivery_target,
    reseal_predicate,
    resealed,
    result_columns,
    run_closed,
    run_columns,
    run_conflict,
    run_from_row,
    run_step_params,
    sealed_key_ids_sql,
    token_hash,
    with_its_run,
)
from service.store.migrations import load_migrations

log = logging.getLogger(__name__)

# NOTIFY holds a database-wide lock from just before commit until the commit is flushed, so
# notifying transactions commit one at a time. Under load an accept therefore carries its own
# NOTIFY only if this store sent none in the last window; otherwise one trailing NOTIFY follows
# once the window is over, after that accept's commit. A wake-up is never lost, only merged.
_WAKE_WINDOW = 0.05

_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


@contextlib.contextmanager
def _translated(doing: str) -> Iterator[None]:
    """Driver and network errors become :class:`StoreError`; the message names the action only
    (a driver message may quote a value)."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        if _unstorable_text(exc):
            # The caller's data, not the database's health: a 503 would be retried for ever.
            raise InvalidRequest(
                "text fields cannot hold NUL characters or unpaired surrogates",
                code="unstorable_text",
            ) from exc
        raise StoreError(f"the database could not {doing}") from exc


def _unstorable_text(exc: BaseException) -> bool:
    """PostgreSQL text cannot hold U+0000, and UTF-8 cannot carry a lone surrogate."""
    return isinstance(exc, asyncpg.CharacterNotInRepertoireError) or (
        isinstance(exc, asyncpg.DataError) and isinstance(exc.__cause__, UnicodeEncodeError)
    )


async def _keep_session(connection: Any) -> None:
    """Pool connections hold no session state (no SET, LISTEN, session lock or temp table), so
    a release needs only the rollback asyncpg always does, not its reset query: that would cost
    a round trip on every call, ``accept`` included."""


class PostgresStore(Store):
    def __init__(
        self,
        dsn: str,
        *,
        cipher: TokenCipher,
        min_size: int = 2,
        max_size: int = 10,
        command_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        listen_ping_seconds: float = 15.0,
    ) -> None:
        self._dsn = dsn
        self._cipher = cipher
        self._min_size, self._max_size = min_size, max_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._listen_ping = listen_ping_seconds
        self._pool: Any = None
        self._work = WorkListeners()
        self._listen_task: asyncio.Task[None] | None = None
        self._woke_at = -_WAKE_WINDOW  # monotonic time of the last wake-up sent
        self._wake_owed = False  # an accept committed without one; the trailing one is due
        self._trailing: asyncio.Task[None] | None = None

    # -- life cycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        with _translated("be reached"):
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
                reset=_keep_session,
                server_settings={"application_name": "result-relay"},
            )
        try:
            await self._migrate()
            sealed = await self.reseal_tokens()
            found = set[str]()
            for column in SEALED_COLUMNS:
                found |= {r[0] for r in await self._fetch("read", sealed_key_ids_sql(column))}
            check_key_ids(self._cipher, found)
        except BaseException:
            await self.close()
            raise

        if sealed:
            log.info("sealed the tokens stored in clear", extra={"tokens": sealed})

    async def _migrate(self) -> None:
        # Replicas starting together queue on the lock; the first applies what is missing and the
        # others then find it recorded. DDL is transactional: a failed migration leaves nothing.
        async with self._transaction("migrate the schema") as conn:
            await conn.execute(q.LOCK_MIGRATIONS, q.MIGRATION_LOCK)
            await conn.execute(q.CREATE_SCHEMA_MIGRATIONS)
            done = {row[0] for row in await conn.fetch(q.APPLIED_MIGRATIONS)}
            for migration in load_migrations("postgres"):
                if migration.version in done:
                    continue
                log.info("applying migration", extra={"version": migration.version})
                await conn.execute(migration.sql)  # no arguments: several statements at once
                await conn.execute(
                    q.RECORD_MIGRATION, migration.version, migration.name, time.time()
                )

    async def close(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trailing
            self._trailing = None
            if self._wake_owed and self._pool is not None:
                with contextlib.suppress(StoreError):
                    await self._announce()
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
            self._listen_task = None
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except _DRIVER_ERRORS:
                pool.terminate()

    async def ping(self) -> None:
        await self._fetchval("be reached", "SELECT 1")

    async def reseal_tokens(
        self, *, every_key: bool = False, batch_size: int = RESEAL_BATCH
    ) -> int:
        done = reseal_predicate(self._cipher, every_key=every_key)
        changed = 0
        for column in SEALED_COLUMNS:
            select, update = _reseal_queries(column)
            while True:
                # Replicas starting together may pick the same rows: the update matches only
                # the value it read, and READ COMMITTED re-checks that after waiting for the
                # other's row lock, so each value is sealed once.
                async with self._transaction("seal stored tokens") as conn:
                    rows = await conn.fetch(select, len(done), done, batch_size)
                    changes = resealed(self._cipher, column, rows)
                    for change in changes:
                        changed += _rowcount(await conn.execute(update, *change))
                if len(rows) < batch_size:
                    break
        return changed

    async def probe_write(self) -> None:
        await self._execute("take a write", q.PROBE_WRITE)

    # -- plumbing -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _connection(self, doing: str) -> AsyncIterator[Any]:
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        with _translated(doing):
            async with pool.acquire(timeout=self._command_timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self, doing: str) -> AsyncIterator[Any]:
        async with self._connection(doing) as conn, conn.transaction():
            yield conn

    async def _fetch(self, doing: str, query: str, *args: Any) -> list[Any]:
        async with self._connection(doing) as conn:
            return list(await conn.fetch(query, *args))

    async def _fetchrow(self, doing: str, query: str, *args: Any) -> Any:
        async with self._connection(doing) as conn:
            return await conn.fetchrow(query, *args)

    async def _fetchval(self, doing: str, query: str, *args: Any) -> Any:
        async with self._connection(doing) as conn:
            return await conn.fetchval(query, *args)

    async def _announce(self) -> None:
        """Wake every listening replica (for writes that committed without doing so)."""
        async with self._connection("announce new work") as conn:
            await conn.execute(q.WAKE)

    async def _execute(self, doing: str, query: str, *args: Any) -> int:
        """Run a write; how many rows it touched."""
        async with self._connection(doing) as conn:
            return _rowcount(await conn.execute(query, *args))

    # -- results ------------------------------------------------------------------------------
    async def accept(self, new: NewResult, *, now: float) -> AcceptOutcome:
        # A second pass only if the existing row vanished (deleted) between two statements.
        for _ in range(3):
            outcome: AcceptOutcome | Literal["run"] | None = "run"
            if new.destination or new.interaction or new.channel_id:
                outcome = await self._accept_alone(new, now=now)
            if outcome == "run":  # only its run can say where it goes, or it names a run
                outcome = await self._accept_with_run(new, now=now)
            if isinstance(outcome, AcceptOutcome):
                return outcome
        raise StoreError("the result could not be accepted: its workflow id keeps changing")

    async def _accept_alone(
        self, new: NewResult, *, now: float
    ) -> AcceptOutcome | Literal["run"] | None:
        """The common case in one round trip: no run of that workflow id. ``"run"`` when there
        is one after all; None when an existing row vanished meanwhile."""
        columns = result_columns(new, self._cipher)  # results arrive encoded when large
        wake = self._wake_now()
        async with self._connection("accept the result") as conn:
            row = await conn.fetchrow(q.ACCEPT, *_accept_args(columns), now, wake, False)
            if row["status"] is None and not row["run_found"]:
                # ON CONFLICT waited for the other insert to commit, so it is visible now.
                existing = await conn.fetchrow(q.GET_RESULT, new.tenant, new.workflow_id)
        if row["status"] is not None:
            return AcceptOutcome(self._accepted(columns, new, row, wake, now), created=True)
        if row["run_found"]:
            return "run"
        if existing is None:
            return None
        check_same_body(existing["body_hash"], new)
        return AcceptOutcome(_record(existing, self._cipher), created=False)

    async def _accept_with_run(self, new: NewResult, *, now: float) -> AcceptOutcome | None:
        """Merge the result with its run (:func:`with_its_run`), accept it and finish the run,
        in one transaction."""
        wake = self._wake_now()
        async with self._transaction("accept the result") as conn:
            run = await conn.fetchrow(q.GET_RUN, new.tenant, new.workflow_id)
            kept = with_its_run(new, run_from_row(run, self._cipher) if run else None)
            columns = result_columns(kept, self._cipher)
            row = await conn.fetchrow(q.ACCEPT, *_accept_args(columns), now, wake, True)
            existing = None
            if row["status"] is None:
                existing = await conn.fetchrow(q.GET_RESULT, new.tenant, new.workflow_id)
                if existing is None:
                    return None
                check_same_body(existing["body_hash"], new)
            # Also for the same body again: the run of a result kept before runs finished in the
            # same transaction is finished by its retry.
            finished = run is not None and bool(
                await conn.fetchval(
                    q.FINISH_RUN, *_finish_args(new.tenant, new.workflow_id, new.error, now)
                )
            )
        if existing is not None:
            record = _record(existing, self._cipher)
            return AcceptOutcome(record, created=False, run_finished=finished)
        record = self._accepted(columns, kept, row, wake, now)
        return AcceptOutcome(record, created=True, run_finished=finished)

    def _wake_now(self) -> bool:
        wake = time.monotonic() - self._woke_at >= _WAKE_WINDOW
        if wake:
            self._woke_at = time.monotonic()
        return wake

    def _accepted(
        self, columns: dict[str, Any], new: NewResult, row: Any, wake: bool, now: float
    ) -> ResultRecord:
        if not wake and row["status"] == Status.PENDING:
            self._owe_wake()
        return accepted_record(
            columns,
            new,
            status=Status(row["status"]),
            orphan_reason=row["orphan_reason"],
            next_attempt_at=row["next_attempt_at"],
            now=now,
            cipher=self._cipher,
        )

    def _owe_wake(self) -> None:
        self._wake_owed = True
        if self._trailing is None or self._trailing.done():
            self._trailing = asyncio.create_task(self._trail(), name="relay-trailing-wake")

    async def _trail(self) -> None:
        while self._wake_owed:
            await asyncio.sleep(_WAKE_WINDOW)
            # Accepts committed before this line are covered by the NOTIFY below; later ones
            # owe again and go round once more.
            self._wake_owed = False
            self._woke_at = time.monotonic()
            try:
                await self._announce()
            except asyncio.CancelledError:
                self._wake_owed = True  # closing: ``close`` sends it
                raise
            except Exception:  # a background task: log, never raise; polling finds the work
                log.warning("announcing new work failed; polling will find it", exc_info=True)

    async def get_result(self, tenant: str, workflow_id: str) -> ResultRecord | None:
        row = await self._fetchrow("read the result", q.GET_RESULT, tenant, workflow_id)
        return _record(row, self._cipher) if row is not None else None

    async def list_results(
        self, tenant: str, filters: ResultFilter, *, limit: int, cursor: str | None
    ) -> Page:
        rows, next_cursor = await self._listing(
            q.LIST_RESULTS, "list results", tenant, filters, cursor, limit
        )
        return Page(tuple(_record(row, self._cipher) for row in rows), next_cursor)

    async def _listing(
        self,
        select: str,
        doing: str,
        tenant: str,
        filters: ResultFilter | RunFilter,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[Row], str | None]:
        """``select`` narrowed to a listing's filters, newest first: a page and the next cursor."""
        args: list[Any] = []
        clauses = []
        for name, values in listing_filters(tenant, filters, cursor):
            numbers = range(len(args) + 1, len(args) + len(values) + 1)
            clauses.append(q.LIST_RESULTS_FILTERS[name].format(*numbers))
            args.extend(values)
        args.append(limit + 1)
        sql = select + " AND ".join(clauses) + q.LIST_RESULTS_ORDER.format(len(args))
        return page_of(await self._fetch(doing, sql, *args), limit)

    async def list_attempts(self, tenant: str, workflow_id: str) -> list[Attempt] | None:
        rows = await self._fetch("list attempts", q.LIST_ATTEMPTS, tenant, workflow_id)
        if not rows:
            return None
        return [attempt_from_row(row) for row in rows if row["id"] is not None]

    async def delete_result(self, tenant: str, workflow_id: str) -> bool:
        return await self._execute("delete the result", q.DELETE_RESULT, tenant, workflow_id) > 0

    async def purge(self, *, before: float) -> int:
        async with self._transaction("purge results") as conn:
            await conn.execute(q.PURGE_RUNS, before)
            return _rowcount(await conn.execute(q.PURGE, before))

    # -- destinations -------------------------------------------------------------------------
    async def put_destination(self, tenant: str, destination: Destination, *, now: float) -> bool:
        created = await self._fetchval(
            "store the destination",
            q.PUT_DESTINATION,
            tenant,
            destination.name,
            destination.webhook_id,
            destination_token(self._cipher, destination),
            destination.thread_id,
            now,
        )
        return bool(created)

    async def get_destination(self, tenant: str, name: str) -> Destination | None:
        row = await self._fetchrow("read the destination", q.GET_DESTINATION, tenant, name)
        return destination_from_row(row, self._cipher) if row is not None else None

    async def list_destinations(self, tenant: str) -> list[Destination]:
        rows = await self._fetch("list destinations", q.LIST_DESTINATIONS, tenant)
        return [destination_from_row(row, self._cipher) for row in rows]

    async def delete_destination(self, tenant: str, name: str) -> bool:
        return await self._execute("delete the destination", q.DELETE_DESTINATION, tenant, name) > 0

    # -- the tenants' bots ---------------------------------------------------------------------
    async def put_bot(self, config: BotConfig, *, now: float) -> None:
        params = bot_params(config, self._cipher, now=now)
        await self._execute("store the bot", q.PUT_BOT, *(params[n] for n in q.PUT_BOT_PARAMS))

    async def get_bot(self, tenant: str) -> BotConfig | None:
        row = await self._fetchrow("read the bot", q.GET_BOT, tenant)
        return bot_from_row(row, self._cipher) if row is not None else None

    async def list_bots(self) -> list[BotConfig]:
        return [
            bot_from_row(row, self._cipher) for row in await self._fetch("list bots", q.LIST_BOTS)
        ]

    async def delete_bot(self, tenant: str) -> bool:
        return await self._execute("delete the bot", q.DELETE_BOT, tenant) > 0

    # -- API keys -----------------------------------------------------------------------------
    async def add_api_key(self, key: ApiKey, *, key_hash: str) -> None:
        await self._execute(
            "store the API key",
            q.ADD_API_KEY,
            key.key_id,
            key.tenant,
            key_hash,
            key.label,
            key.created_at,
        )

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self._fetch("list API keys", q.LIST_API_KEYS)
        return [api_key_from_row(row) for row in rows]

    async def revoke_api_key(self, key_id: str, *, now: float) -> bool:
        return await self._execute("revoke the API key", q.REVOKE_API_KEY, now, key_id) > 0

    async def tenant_for_key(self, key_hash: str) -> str | None:
        tenant = await self._fetchval("check the API key", q.TENANT_FOR_KEY, key_hash)
        return str(tenant) if tenant is not None else None

    # -- delivery -----------------------------------------------------------------------------
    async def claim_lane(self, owner: str, *, now: float, lease_seconds: float) -> str | None:
        lane = await self._fetchval("claim a lane", q.CLAIM_LANE, now, owner, lease_seconds)
        return str(lane) if lane is not None else None

    async def renew_lease(self, owner: str, lane: str, *, now: float, lease_seconds: float) -> bool:
        renewed = await self._execute(
            "renew the lease", q.RENEW_LEASE, now, lease_seconds, lane, owner
        )
        return renewed > 0

    async def release_lane(self, owner: str, lane: str) -> None:
        await self._execute("release the lane", q.RELEASE_LANE, lane, owner)

    async def due_results(self, lane: str, *, now: float, limit: int) -> list[ResultRecord]:
        rows = await self._fetch("read due results", q.DUE_RESULTS, lane, now, limit)
        return [_record(row, self._cipher) for row in rows]

    async def next_due_at(self, *, now: float) -> float | None:
        due = await self._fetchval("read when work is due", q.NEXT_DUE_AT, now)
        return float(due) if due is not None else None

    async def mark_in_flight(
        self, tenant: str, workflow_id: str, *, part: int, route: Route, now: float
    ) -> None:
        found = await self._fetchval(
            "mark the part in flight",
            q.MARK_IN_FLIGHT,
            tenant,
            workflow_id,
            part,
            route.value,
            now,
        )
        if found is None:
            raise ResultGone(f"no result {workflow_id!r}")

    async def record_attempt(self, tenant: str, workflow_id: str, attempt: Attempt) -> None:
        found = await self._fetchval(
            "record the attempt", q.RECORD_ATTEMPT, tenant, workflow_id, *_attempt_args(attempt)
        )
        if found is None:
            raise ResultGone(f"no result {workflow_id!r}")

    async def record_delivery(
        self,
        tenant: str,
        workflow_id: str,
        attempt: Attempt,
        message: DeliveredMessage,
        *,
        finished: bool,
        now: float,
    ) -> None:
        found = await self._fetchval(
            "record the delivery",
            q.RECORD_DELIVERY,
            tenant,
            workflow_id,
            *_attempt_args(attempt),
            message.part,
            message.message_id,
            message.route.value,
            now,
            finished,
        )
        if found is None:
            raise ResultGone(f"no result {workflow_id!r}")

    async def mark_delivered(self, tenant: str, workflow_id: str, *, now: float) -> None:
        await self._execute("settle the result", q.MARK_DELIVERED, tenant, workflow_id, now)

    async def schedule_retry(
        self, tenant: str, workflow_id: str, *, at: float, error: str, now: float
    ) -> None:
        await self._execute(
            "schedule the retry", q.SCHEDULE_RETRY, tenant, workflow_id, at, error, now
        )

    async def orphan(self, tenant: str, workflow_id: str, *, reason: str, now: float) -> None:
        await self._execute("orphan the result", q.ORPHAN, tenant, workflow_id, reason, now)

    async def redeliver(
        self, tenant: str, workflow_id: str, *, destination: Destination | None, now: float
    ) -> ResultRecord | None:
        async with self._transaction("redeliver the result") as conn:
            row = await conn.fetchrow(q.LOCK_RESULT, tenant, workflow_id)
            if row is None:
                return None
            target = redelivery_target(dict(row), destination, self._cipher)
            check_destination_alive(
                await conn.fetchval(
                    q.ENTER_WEBHOOK,
                    target["lane"],
                    target["webhook_id"],
                    target["webhook_token_hash"],
                )
            )
            await conn.execute(q.DELETE_MESSAGES, row["id"])
            await conn.execute(
                q.REQUEUE,
                row["id"],
                now,
                target["destination_name"],
                target["webhook_id"],
                target["webhook_token"],
                target["webhook_token_hash"],
                target["thread_id"],
                target["lane"],
            )
            await conn.execute(q.WAKE)
            updated = await conn.fetchrow(q.GET_RESULT, tenant, workflow_id)
        return _record(updated, self._cipher)

    async def kill_webhook(self, webhook_id: str, token: str, *, reason: str, now: float) -> int:
        hashed = token_hash(token)
        async with self._transaction("mark the webhook dead") as conn:
            await conn.execute(q.KILL_WEBHOOK_LOCK, webhook_id)
            await conn.execute(q.KILL_WEBHOOK, webhook_id, hashed, reason, now)
            return _rowcount(await conn.execute(q.ORPHAN_WEBHOOK, webhook_id, hashed, reason, now))

    async def revive_webhook(self, webhook_id: str, token: str) -> bool:
        revived = await self._execute(
            "revive the webhook", q.REVIVE_WEBHOOK, webhook_id, token_hash(token)
        )
        return revived > 0

    async def dead_reason(self, webhook_id: str, token: str) -> str | None:
        reason = await self._fetchval(
            "read whether the webhook is dead", q.DEAD_REASON, webhook_id, token_hash(token)
        )
        return str(reason) if reason is not None else None

    async def learn_webhook_channel(self, webhook_id: str, channel_id: str, *, now: float) -> None:
        await self._execute(
            "record the webhook's channel", q.LEARN_WEBHOOK_CHANNEL, webhook_id, channel_id, now
        )

    async def webhook_channel(self, webhook_id: str) -> str | None:
        channel = await self._fetchval("read the webhook's channel", q.WEBHOOK_CHANNEL, webhook_id)
        return str(channel) if channel is not None else None

    async def count_pending(self) -> tuple[int, float | None]:
        row = await self._fetchrow("count pending results", q.COUNT_PENDING)
        oldest = row[1]
        return int(row[0]), float(oldest) if oldest is not None else None

    async def overview(
        self, tenant: str, *, since: float, slot_seconds: float, now: float
    ) -> TenantOverview:
        async with self._connection("read the overview") as conn:
            statuses = await conn.fetch(q.OVERVIEW_STATUSES, tenant)
            attempts = await conn.fetch(q.OVERVIEW_ATTEMPTS, tenant, since, slot_seconds, now)
            replicas = await conn.fetchval(q.LIVE_REPLICAS, now)
            paused = await conn.fetchval(q.PAUSED_UNTIL)
        return overview_from_rows(statuses, attempts, int(replicas), float(paused))

    # -- runs ---------------------------------------------------------------------------------
    async def start_run(self, new: NewRun, *, now: float) -> RunStart:
        columns = run_columns(new, self._cipher)
        args = [columns[name] for name in q.RUN_COLUMNS]
        # A second pass only if the existing row vanished between the two statements.
        for _ in range(3):
            async with self._connection("start the run") as conn:
                row = await conn.fetchrow(q.START_RUN, *args, now)
                existing = None
                if row is None:
                    existing = await conn.fetchrow(q.GET_RUN, new.tenant, new.workflow_id)
            if row is not None:
                return RunStart(run_from_row(row, self._cipher), created=True)
            if existing is not None:
                if existing["body_hash"] != new.body_hash:
                    raise run_conflict(new.workflow_id)
                return RunStart(run_from_row(existing, self._cipher), created=False)
        raise StoreError("the run could not be started: its workflow id keeps changing")

    async def get_run(self, tenant: str, workflow_id: str) -> RunRecord | None:
        row = await self._fetchrow("read the run", q.GET_RUN, tenant, workflow_id)
        return run_from_row(row, self._cipher) if row is not None else None

    async def list_runs(
        self, tenant: str, filters: RunFilter, *, limit: int, cursor: str | None
    ) -> RunPage:
        rows, next_cursor = await self._listing(
            q.LIST_RUNS, "list runs", tenant, filters, cursor, limit
        )
        return RunPage(tuple(run_from_row(row, self._cipher) for row in rows), next_cursor)

    async def record_progress(
        self, tenant: str, workflow_id: str, progress: Progress, *, now: float
    ) -> RunRecord | None:
        async with self._transaction("record the progress") as conn:
            row = await conn.fetchrow(
                q.RECORD_PROGRESS, tenant, workflow_id, progress_json(progress), now
            )
            if row is None:
                return None
            if not row["taken"]:
                raise run_closed(workflow_id, row["status"])
            updated = await conn.fetchrow(q.GET_RUN, tenant, workflow_id)
        return run_from_row(updated, self._cipher)

    async def finish_run(
        self, tenant: str, workflow_id: str, *, error: tuple[str, str] | None, now: float
    ) -> bool:
        args = _finish_args(tenant, workflow_id, error, now)
        return bool(await self._fetchval("finish the run", q.FINISH_RUN, *args))

    async def claim_due_run(
        self, owner: str, *, now: float, lease_seconds: float
    ) -> RunRecord | None:
        row = await self._fetchrow("claim a run", q.CLAIM_DUE_RUN, now, owner, lease_seconds)
        return run_from_row(row, self._cipher) if row is not None else None

    async def save_run_step(self, owner: str, step: RunStep, *, now: float) -> bool:
        params = run_step_params(step, owner=owner, now=now)
        args = [params[name] for name in q.SAVE_RUN_STEP_PARAMS]
        return await self._execute("save the run", q.SAVE_RUN_STEP, *args) > 0

    async def next_run_due_at(self, *, now: float) -> float | None:
        due = await self._fetchval("read when a run is due", q.NEXT_RUN_DUE_AT, now)
        return float(due) if due is not None else None

    # -- the fleet ----------------------------------------------------------------------------
    async def subscribe(self, on_work: Callable[[], None]) -> None:
        """Returns once this store listens (or its first try failed: it keeps trying in the
        background, and polling covers the gap)."""
        self._work.add(on_work)
        if self._listen_task is None:
            if self._pool is None:
                raise StoreError("the store is not open")
            first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._listen(first), name="relay-listen")
            self._listen_task = task
            await asyncio.wait([first, task], return_when=asyncio.FIRST_COMPLETED)

    async def _listen(self, first: asyncio.Future[None]) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen_once(first)
                log.warning("the connection listening for new work was lost; reconnecting")
                delay = 0.1
            except Exception:  # the listener must outlive any failure; polling covers the gap
                log.warning("listening for new work failed; will retry", exc_info=True)
            if not first.done():
                first.set_result(None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _listen_once(self, first: asyncio.Future[None]) -> None:
        """Listen on one connection until it is lost."""
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": "result-relay-listen"},
        )
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(q.WORK_CHANNEL, self._heard)
            if first.done():
                self._work.fire()  # whatever was announced while nobody listened
            else:
                first.set_result(None)
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._listen_ping)
                if not lost.is_set():
                    # A peer that vanished without a word (a dropped network) shows here.
                    await conn.fetchval("SELECT 1", timeout=self._connect_timeout)
        finally:
            conn.terminate()

    def _heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._work.fire()

    async def heartbeat(self, owner: str, *, now: float, ttl: float) -> int:
        alive = await self._fetchval("record the heartbeat", q.HEARTBEAT, owner, now, ttl)
        return int(alive)

    async def forget_replica(self, owner: str) -> None:
        await self._execute("forget the replica", q.FORGET_REPLICA, owner)

    async def pause_all(self, *, until: float) -> None:
        await self._execute("pause the fleet", q.PAUSE_ALL, until)

    async def paused_until(self) -> float:
        return float(await self._fetchval("read the fleet's pause", q.PAUSED_UNTIL))

    async def database_time(self) -> float | None:
        return float(await self._fetchval("read the database's clock", q.DATABASE_TIME))


def _rowcount(status: str) -> int:
    """Rows touched, from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    return int(status.rsplit(" ", 1)[-1])


def _reseal_queries(column: SealedColumn) -> tuple[str, str]:
    """$1 prefix length, $2 prefix, $3 limit; then $1 new value, the key, the old value."""
    keys = ", ".join(column.keys)
    select = (
        f"SELECT {keys}, {column.column} FROM {column.table} "
        f"WHERE {column.column} IS NOT NULL AND substr({column.column}, 1, $1) <> $2 LIMIT $3"
    )
    match = " AND ".join(f"{key} = ${i}" for i, key in enumerate(column.keys, start=2))
    last = len(column.keys) + 2
    update = (
        f"UPDATE {column.table} SET {column.column} = $1 "
        f"WHERE {match} AND {column.column} = ${last}"
    )
    return select, update


def _attempt_args(attempt: Attempt) -> tuple[Any, ...]:
    return (
        attempt.at,
        attempt.part,
        attempt.route.value,
        attempt.outcome.value,
        attempt.http_status,
        attempt.discord_code,
        attempt.duration_ms,
        attempt.error,
        attempt.counts,
    )


def _record(row: Row, cipher: TokenCipher) -> ResultRecord:
    parts: Sequence[dict[str, Any]] = json.loads(row["delivered_parts"] or "[]")
    # JSON spells 5.0 as 5: times go back to floats, as every other read returns them.
    messages = [{**part, "delivered_at": float(part["delivered_at"])} for part in parts]
    return record_from_row(row, messages, cipher, attempts_made=row["attempts_made"])


def _accept_args(columns: dict[str, Any]) -> list[Any]:
    return [columns[name] for name in q.ACCEPT_COLUMNS]


def _finish_args(
    tenant: str, workflow_id: str, error: tuple[str, str] | None, now: float
) -> tuple[Any, ...]:
    """FINISH_RUN's parameters: ``failed`` with an error's stage and message, else ``finished``."""
    stage, message = error if error is not None else (None, None)
    status = "failed" if error is not None else "finished"
    return tenant, workflow_id, status, stage, message, now
