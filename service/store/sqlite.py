"""The embedded SQLite store: WAL, ``synchronous=FULL``, and group commit.

The queries live here; connections, migrations and the group-commit writer live in
``sqlite_engine`` (each write below runs inside the writer's next transaction).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

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
from service.errors import ResultGone
from service.store.base import (
    HAS_BOT_FALLBACK_SQL,
    RESEAL_BATCH,
    SEALED_COLUMNS,
    SETTLED_RUN_STATUSES,
    SealedColumn,
    Store,
    WorkListeners,
    accepted_record,
    api_key_from_row,
    attempt_from_row,
    bot_fallback_sql,
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
from service.store.sqlite_engine import SQLiteEngine

log = logging.getLogger(__name__)

# Whatever records what became of a part in flight clears the mark (see mark_in_flight).
_NOT_IN_FLIGHT = "in_flight_part = NULL, in_flight_route = NULL, in_flight_at = NULL"


def sqlite_path(database_url: str) -> str:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``sqlite://:memory:``."""
    if not database_url.startswith("sqlite://"):
        raise ValueError("not a sqlite:// URL")
    path = database_url.removeprefix("sqlite://")
    if path.startswith("/"):
        path = path[1:]
    return path or ":memory:"


class SQLiteStore(Store):
    def __init__(self, path: str, *, cipher: TokenCipher) -> None:
        self._db = SQLiteEngine(path)
        self._cipher = cipher
        self._read = self._db.read
        self._write = self._db.write
        self._work = WorkListeners()

    # -- life cycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        await self._db.open()
        try:
            sealed = await self.reseal_tokens()
            if sealed:
                await self._db.scrub()
            check_key_ids(self._cipher, await self._read(_sealed_key_ids))
        except BaseException:
            await self._db.close()
            raise
        if sealed:
            log.info("sealed the tokens stored in clear", extra={"tokens": sealed})

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def reseal_tokens(
        self, *, every_key: bool = False, batch_size: int = RESEAL_BATCH
    ) -> int:
        done = reseal_predicate(self._cipher, every_key=every_key)
        changed = 0
        for column in SEALED_COLUMNS:
            batch = functools.partial(
                _reseal_batch, cipher=self._cipher, column=column, done=done, limit=batch_size
            )
            while True:
                found, count = await self._write(batch)
                changed += count
                if found < batch_size:
                    break
        return changed

    async def probe_write(self) -> None:
        # Through the group commit like every write, so it fails exactly when they would.
        await self._write(
            lambda c: c.execute("UPDATE write_probe SET probes = probes + 1 WHERE id = 1")
        )

    # -- results ------------------------------------------------------------------------------
    async def accept(self, new: NewResult, *, now: float) -> AcceptOutcome:
        def write(conn: sqlite3.Connection) -> AcceptOutcome:
            existing = _result_row(conn, new.tenant, new.workflow_id)
            if existing is not None:
                check_same_body(existing["body_hash"], new)
                record = _record(conn, existing, self._cipher)
                return AcceptOutcome(record, created=False, run_finished=finish(conn))
            run = _run_row(conn, new.tenant, new.workflow_id)
            kept = with_its_run(new, run_from_row(run, self._cipher) if run else None)
            # Encoded here, in the writer thread: megabytes of results are no work for the loop.
            columns = result_columns(kept, self._cipher)
            dead = _dead_reason(conn, columns["webhook_id"], columns["webhook_token_hash"])
            if dead and _bot_may_take(conn, columns):
                dead = None  # queued: the worker sends it on to the bot
            status = Status.ORPHANED if dead else Status.PENDING
            due = None if dead else now
            values = {
                **columns,
                "status": status,
                "orphan_reason": dead,
                "next_attempt_at": due,
                "created_at": now,
                "updated_at": now,
            }
            names = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            conn.execute(f"INSERT INTO results ({names}) VALUES ({marks})", values)
            record = accepted_record(
                columns,
                kept,
                status=status,
                orphan_reason=dead,
                next_attempt_at=due,
                now=now,
                cipher=self._cipher,
            )
            finished = run is not None and finish(conn)
            return AcceptOutcome(record, created=True, run_finished=finished)

        def finish(conn: sqlite3.Connection) -> bool:
            # Also for the same body again: the run of a result kept before runs finished in
            # the same transaction is finished by its retry.
            return _finish_run(conn, new.tenant, new.workflow_id, error=new.error, now=now)

        outcome = await self._write(write)
        if outcome.run_finished or (outcome.created and outcome.record.status is Status.PENDING):
            self._work.fire()
        return outcome

    async def get_result(self, tenant: str, workflow_id: str) -> ResultRecord | None:
        def read(conn: sqlite3.Connection) -> ResultRecord | None:
            row = _result_row(conn, tenant, workflow_id)
            return _record(conn, row, self._cipher) if row is not None else None

        return await self._read(read)

    async def list_results(
        self, tenant: str, filters: ResultFilter, *, limit: int, cursor: str | None
    ) -> Page:
        sql, params = _listing("SELECT * FROM results", "", tenant, filters, cursor, limit)

        def read(conn: sqlite3.Connection) -> Page:
            rows, next_cursor = page_of(conn.execute(sql, params).fetchall(), limit)
            return Page(tuple(_record(conn, row, self._cipher) for row in rows), next_cursor)

        return await self._read(read)

    async def list_attempts(self, tenant: str, workflow_id: str) -> list[Attempt] | None:
        def read(conn: sqlite3.Connection) -> list[Attempt] | None:
            row = _result_row(conn, tenant, workflow_id)
            if row is None:
                return None
            rows = conn.execute(
                "SELECT * FROM attempts WHERE result_id = ? ORDER BY id", (row["id"],)
            ).fetchall()
            return [attempt_from_row(r) for r in rows]

        return await self._read(read)

    async def delete_result(self, tenant: str, workflow_id: str) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM results WHERE tenant = ? AND workflow_id = ?",
                    (tenant, workflow_id),
                ).rowcount
                > 0
            )
        )

    async def purge(self, *, before: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            conn.execute(
                f"DELETE FROM runs WHERE created_at < ? AND status IN {SETTLED_RUN_STATUSES}",
                (before,),
            )
            return int(
                conn.execute(
                    "DELETE FROM results WHERE created_at < ? AND status != 'pending'", (before,)
                ).rowcount
            )

        return await self._write(write)

    # -- destinations -------------------------------------------------------------------------
    async def put_destination(self, tenant: str, destination: Destination, *, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            existed = conn.execute(
                "SELECT 1 FROM destinations WHERE tenant = ? AND name = ?",
                (tenant, destination.name),
            ).fetchone()
            conn.execute(
                "INSERT INTO destinations (tenant, name, webhook_id, webhook_token, thread_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO UPDATE SET "
                "webhook_id = excluded.webhook_id, webhook_token = excluded.webhook_token, "
                "thread_id = excluded.thread_id",
                (
                    tenant,
                    destination.name,
                    destination.webhook_id,
                    destination_token(self._cipher, destination),
                    destination.thread_id,
                    now,
                ),
            )
            return existed is None

        return await self._write(write)

    async def get_destination(self, tenant: str, name: str) -> Destination | None:
        def read(conn: sqlite3.Connection) -> Destination | None:
            row = conn.execute(
                "SELECT * FROM destinations WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            return destination_from_row(row, self._cipher) if row is not None else None

        return await self._read(read)

    async def list_destinations(self, tenant: str) -> list[Destination]:
        return await self._read(
            lambda conn: [
                destination_from_row(row, self._cipher)
                for row in conn.execute(
                    "SELECT * FROM destinations WHERE tenant = ? ORDER BY name", (tenant,)
                )
            ]
        )

    async def delete_destination(self, tenant: str, name: str) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM destinations WHERE tenant = ? AND name = ?", (tenant, name)
                ).rowcount
                > 0
            )
        )

    # -- the tenants' bots ---------------------------------------------------------------------
    async def put_bot(self, config: BotConfig, *, now: float) -> None:
        params = bot_params(config, self._cipher, now=now)
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO bots (tenant, bot_id, username, token, dm_fallback, source, "
                "created_at, updated_at) VALUES (:tenant, :bot_id, :username, :token, "
                ":dm_fallback, :source, :now, :now) ON CONFLICT (tenant) DO UPDATE SET "
                "bot_id = excluded.bot_id, username = excluded.username, token = excluded.token, "
                "dm_fallback = excluded.dm_fallback, source = excluded.source, "
                "updated_at = excluded.updated_at",
                params,
            )
        )

    async def get_bot(self, tenant: str) -> BotConfig | None:
        def read(conn: sqlite3.Connection) -> BotConfig | None:
            row = conn.execute("SELECT * FROM bots WHERE tenant = ?", (tenant,)).fetchone()
            return bot_from_row(row, self._cipher) if row is not None else None

        return await self._read(read)

    async def list_bots(self) -> list[BotConfig]:
        return await self._read(
            lambda conn: [
                bot_from_row(row, self._cipher)
                for row in conn.execute("SELECT * FROM bots ORDER BY tenant")
            ]
        )

    async def delete_bot(self, tenant: str) -> bool:
        return await self._write(
            lambda conn: conn.execute("DELETE FROM bots WHERE tenant = ?", (tenant,)).rowcount > 0
        )

    # -- API keys -----------------------------------------------------------------------------
    async def add_api_key(self, key: ApiKey, *, key_hash: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (key_id, tenant, key_hash, label, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.key_id, key.tenant, key_hash, key.label, key.created_at),
            )
        )

    async def list_api_keys(self) -> list[ApiKey]:
        return await self._read(
            lambda conn: [
                api_key_from_row(row)
                for row in conn.execute("SELECT * FROM api_keys ORDER BY created_at, key_id")
            ]
        )

    async def revoke_api_key(self, key_id: str, *, now: float) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                    (now, key_id),
                ).rowcount
                > 0
            )
        )

    async def tenant_for_key(self, key_hash: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT tenant FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                (key_hash,),
            ).fetchone()
            return row[0] if row else None

        return await self._read(read)

    # -- delivery -----------------------------------------------------------------------------
    async def claim_lane(self, owner: str, *, now: float, lease_seconds: float) -> str | None:
        def write(conn: sqlite3.Connection) -> str | None:
            # Free: never leased (no row), released, run out, or held by another replica that
            # stopped heartbeating. One writer: nobody can claim between this and the upsert.
            row = conn.execute(
                "SELECT r.lane FROM results r LEFT JOIN lanes l ON l.lane = r.lane "
                "WHERE r.status = 'pending' AND r.next_attempt_at <= :now "
                "AND (l.lease_owner IS NULL OR l.lease_expires_at <= :now "
                "OR (l.lease_owner != :owner AND l.lease_owner NOT IN "
                "(SELECT owner FROM replicas WHERE alive_until > :now))) "
                "ORDER BY r.next_attempt_at LIMIT 1",
                {"now": now, "owner": owner},
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "INSERT INTO lanes (lane, lease_owner, lease_expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (lane) DO UPDATE SET lease_owner = excluded.lease_owner, "
                "lease_expires_at = excluded.lease_expires_at",
                (row[0], owner, now + lease_seconds),
            )
            return str(row[0])

        return await self._write(write)

    async def renew_lease(self, owner: str, lane: str, *, now: float, lease_seconds: float) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE lanes SET lease_expires_at = ? WHERE lane = ? AND lease_owner = ? "
                    "AND lease_expires_at > ?",
                    (now + lease_seconds, lane, owner, now),
                ).rowcount
                > 0
            )
        )

    async def release_lane(self, owner: str, lane: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE lanes SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE lane = ? AND lease_owner = ?",
                (lane, owner),
            )
        )

    async def due_results(self, lane: str, *, now: float, limit: int) -> list[ResultRecord]:
        def read(conn: sqlite3.Connection) -> list[ResultRecord]:
            rows = conn.execute(
                "SELECT * FROM results WHERE lane = ? AND status = 'pending' "
                "AND next_attempt_at <= ? ORDER BY created_at, id LIMIT ?",
                (lane, now, limit),
            ).fetchall()
            return [_record(conn, row, self._cipher) for row in rows]

        return await self._read(read)

    async def next_due_at(self, *, now: float) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            # A lease is live while it has not run out and its owner heartbeats (p matches).
            row = conn.execute(
                "SELECT MIN(CASE WHEN l.lease_expires_at > :now AND p.owner IS NOT NULL "
                "THEN MAX(r.next_attempt_at, l.lease_expires_at) ELSE r.next_attempt_at END) "
                "FROM results r LEFT JOIN lanes l ON l.lane = r.lane "
                "LEFT JOIN replicas p ON p.owner = l.lease_owner AND p.alive_until > :now "
                "WHERE r.status = 'pending'",
                {"now": now},
            ).fetchone()
            return row[0] if row else None

        return await self._read(read)

    async def mark_in_flight(
        self, tenant: str, workflow_id: str, *, part: int, route: Route, now: float
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            marked = conn.execute(
                "UPDATE results SET in_flight_part = ?, in_flight_route = ?, in_flight_at = ? "
                "WHERE tenant = ? AND workflow_id = ? AND status = 'pending'",
                (part, route.value, now, tenant, workflow_id),
            ).rowcount
            if not marked:
                # Not pending: settled meanwhile (left as it is), or gone (this raises).
                _result_id(conn, tenant, workflow_id)

        await self._write(write)

    async def record_attempt(self, tenant: str, workflow_id: str, attempt: Attempt) -> None:
        await self._write(lambda conn: _insert_attempt(conn, tenant, workflow_id, attempt))

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
        def write(conn: sqlite3.Connection) -> None:
            result_id = _insert_attempt(conn, tenant, workflow_id, attempt)
            conn.execute(
                "INSERT OR REPLACE INTO messages "
                "(result_id, part, message_id, route, delivered_at) VALUES (?, ?, ?, ?, ?)",
                (result_id, message.part, message.message_id, message.route.value, now),
            )
            if finished:
                conn.execute(
                    "UPDATE results SET status = 'delivered', delivered_at = ?, "
                    "next_attempt_at = NULL, orphan_reason = NULL, updated_at = ? WHERE id = ?",
                    (now, now, result_id),
                )  # the in-flight mark went with the attempt

        await self._write(write)

    async def mark_delivered(self, tenant: str, workflow_id: str, *, now: float) -> None:
        await self._settle(
            tenant,
            workflow_id,
            "status = 'delivered', delivered_at = :now, next_attempt_at = NULL, "
            f"orphan_reason = NULL, updated_at = :now, {_NOT_IN_FLIGHT}",
            {"now": now},
        )

    async def schedule_retry(
        self, tenant: str, workflow_id: str, *, at: float, error: str, now: float
    ) -> None:
        await self._settle(
            tenant,
            workflow_id,
            "status = 'pending', next_attempt_at = :at, last_error = :error, updated_at = :now, "
            + _NOT_IN_FLIGHT,
            {"at": at, "error": error, "now": now},
        )

    async def orphan(self, tenant: str, workflow_id: str, *, reason: str, now: float) -> None:
        await self._settle(
            tenant,
            workflow_id,
            "status = 'orphaned', orphan_reason = :reason, next_attempt_at = NULL, "
            f"last_error = COALESCE(last_error, :reason), updated_at = :now, {_NOT_IN_FLIGHT}",
            {"reason": reason, "now": now},
        )

    async def _settle(
        self, tenant: str, workflow_id: str, assignments: str, params: dict[str, Any]
    ) -> None:
        await self._write(
            lambda conn: conn.execute(
                # Only a pending result is settled: one settled meanwhile is not revived.
                f"UPDATE results SET {assignments} "
                "WHERE tenant = :tenant AND workflow_id = :workflow_id AND status = 'pending'",
                {**params, "tenant": tenant, "workflow_id": workflow_id},
            )
        )

    async def redeliver(
        self, tenant: str, workflow_id: str, *, destination: Destination | None, now: float
    ) -> ResultRecord | None:
        def write(conn: sqlite3.Connection) -> ResultRecord | None:
            row = _result_row(conn, tenant, workflow_id)
            if row is None:
                return None
            target = redelivery_target(dict(row), destination, self._cipher)
            check_destination_alive(
                _dead_reason(conn, target["webhook_id"], target["webhook_token_hash"])
            )
            conn.execute("DELETE FROM messages WHERE result_id = ?", (row["id"],))
            conn.execute(
                "UPDATE results SET status = 'pending', next_attempt_at = :now, attempts = 0, "
                "orphan_reason = NULL, delivered_at = NULL, updated_at = :now, "
                "delivery_round = delivery_round + 1, "
                "destination_name = :destination_name, webhook_id = :webhook_id, "
                "webhook_token = :webhook_token, webhook_token_hash = :webhook_token_hash, "
                f"thread_id = :thread_id, lane = :lane, {_NOT_IN_FLIGHT} "
                "WHERE id = :id",
                {**target, "id": row["id"], "now": now},
            )
            updated = _result_row(conn, tenant, workflow_id)
            assert updated is not None
            return _record(conn, updated, self._cipher)

        record = await self._write(write)
        if record is not None:
            self._work.fire()
        return record

    async def kill_webhook(self, webhook_id: str, token: str, *, reason: str, now: float) -> int:
        hashed = token_hash(token)

        def write(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO dead_webhooks (webhook_id, token_hash, reason, dead_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (webhook_id, token_hash) DO UPDATE SET "
                "reason = excluded.reason, dead_at = excluded.dead_at",
                (webhook_id, hashed, reason, now),
            )
            return int(
                conn.execute(
                    "UPDATE results SET status = 'orphaned', orphan_reason = :reason, "
                    f"next_attempt_at = NULL, updated_at = :now, {_NOT_IN_FLIGHT} "
                    "WHERE webhook_id = :webhook_id AND webhook_token_hash = :hash "
                    f"AND status = 'pending' AND NOT {HAS_BOT_FALLBACK_SQL}",
                    {"reason": reason, "now": now, "webhook_id": webhook_id, "hash": hashed},
                ).rowcount
            )

        return await self._write(write)

    async def revive_webhook(self, webhook_id: str, token: str) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM dead_webhooks WHERE webhook_id = ? AND token_hash = ?",
                    (webhook_id, token_hash(token)),
                ).rowcount
                > 0
            )
        )

    async def dead_reason(self, webhook_id: str, token: str) -> str | None:
        return await self._read(lambda conn: _dead_reason(conn, webhook_id, token_hash(token)))

    async def learn_webhook_channel(self, webhook_id: str, channel_id: str, *, now: float) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO webhook_channels (webhook_id, channel_id, learned_at) "
                "VALUES (?, ?, ?) ON CONFLICT (webhook_id) DO UPDATE SET "
                "channel_id = excluded.channel_id, learned_at = excluded.learned_at "
                "WHERE webhook_channels.channel_id IS NOT excluded.channel_id",
                (webhook_id, channel_id, now),
            )
        )

    async def webhook_channel(self, webhook_id: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT channel_id FROM webhook_channels WHERE webhook_id = ?", (webhook_id,)
            ).fetchone()
            return str(row[0]) if row is not None else None

        return await self._read(read)

    async def count_pending(self) -> tuple[int, float | None]:
        def read(conn: sqlite3.Connection) -> tuple[int, float | None]:
            row = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM results WHERE status = 'pending'"
            ).fetchone()
            return int(row[0]), row[1]

        return await self._read(read)

    async def overview(
        self, tenant: str, *, since: float, slot_seconds: float, now: float
    ) -> TenantOverview:
        def read(conn: sqlite3.Connection) -> TenantOverview:
            statuses = conn.execute(_OVERVIEW_STATUSES, (tenant,)).fetchall()
            attempts = conn.execute(
                _OVERVIEW_ATTEMPTS,
                {"tenant": tenant, "since": since, "slot": slot_seconds, "now": now},
            ).fetchall()
            replicas = conn.execute(
                "SELECT COUNT(*) FROM replicas WHERE alive_until > ?", (now,)
            ).fetchone()
            paused = conn.execute("SELECT paused_until FROM fleet WHERE id = 1").fetchone()
            return overview_from_rows(statuses, attempts, int(replicas[0]), float(paused[0]))

        return await self._read(read)

    # -- runs ---------------------------------------------------------------------------------
    async def start_run(self, new: NewRun, *, now: float) -> RunStart:
        def write(conn: sqlite3.Connection) -> RunStart:
            existing = _run_row(conn, new.tenant, new.workflow_id)
            if existing is not None:
                if existing["body_hash"] != new.body_hash:
                    raise run_conflict(new.workflow_id)
                return RunStart(run_from_row(existing, self._cipher), created=False)
            values = {
                **run_columns(new, self._cipher),
                "status": "running",
                "created_at": now,
                "updated_at": now,
                "last_activity_at": now,
                "due_at": now,
            }
            names = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", values)
            row = _run_row(conn, new.tenant, new.workflow_id)
            assert row is not None
            return RunStart(run_from_row(row, self._cipher), created=True)

        start = await self._write(write)
        if start.created:
            self._work.fire()
        return start

    async def get_run(self, tenant: str, workflow_id: str) -> RunRecord | None:
        def read(conn: sqlite3.Connection) -> RunRecord | None:
            row = _run_row(conn, tenant, workflow_id)
            return run_from_row(row, self._cipher) if row is not None else None

        return await self._read(read)

    async def list_runs(
        self, tenant: str, filters: RunFilter, *, limit: int, cursor: str | None
    ) -> RunPage:
        sql, params = _listing(_RUN_SELECT, "r.", tenant, filters, cursor, limit)

        def read(conn: sqlite3.Connection) -> RunPage:
            rows, next_cursor = page_of(conn.execute(sql, params).fetchall(), limit)
            return RunPage(tuple(run_from_row(row, self._cipher) for row in rows), next_cursor)

        return await self._read(read)

    async def record_progress(
        self, tenant: str, workflow_id: str, progress: Progress, *, now: float
    ) -> RunRecord | None:
        def write(conn: sqlite3.Connection) -> RunRecord | None:
            changed = conn.execute(
                "UPDATE runs SET progress = :progress, progress_version = progress_version + 1, "
                "last_activity_at = :now, updated_at = :now, "
                "due_at = MIN(COALESCE(due_at, MAX(:now, COALESCE(next_edit_at, :now))), "
                "MAX(:now, COALESCE(next_edit_at, :now))) "
                "WHERE tenant = :tenant AND workflow_id = :workflow_id "
                "AND status IN ('running', 'handed_off')",
                {
                    "progress": progress_json(progress),
                    "now": now,
                    "tenant": tenant,
                    "workflow_id": workflow_id,
                },
            ).rowcount
            row = _run_row(conn, tenant, workflow_id)
            if row is None:
                return None
            if not changed:
                raise run_closed(workflow_id, row["status"])
            return run_from_row(row, self._cipher)

        record = await self._write(write)
        if record is not None:
            self._work.fire()
        return record

    async def finish_run(
        self, tenant: str, workflow_id: str, *, error: tuple[str, str] | None, now: float
    ) -> bool:
        finished = await self._write(
            lambda conn: _finish_run(conn, tenant, workflow_id, error=error, now=now)
        )
        if finished:
            self._work.fire()
        return finished

    async def claim_due_run(
        self, owner: str, *, now: float, lease_seconds: float
    ) -> RunRecord | None:
        def write(conn: sqlite3.Connection) -> RunRecord | None:
            # One writer: nobody can claim between this and the update.
            row = conn.execute(
                "SELECT id FROM runs WHERE due_at <= :now AND (lease_owner IS NULL "
                "OR lease_expires_at <= :now OR (lease_owner != :owner AND lease_owner NOT IN "
                "(SELECT owner FROM replicas WHERE alive_until > :now))) "
                "ORDER BY due_at LIMIT 1",
                {"now": now, "owner": owner},
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE runs SET lease_owner = ?, lease_expires_at = ? WHERE id = ?",
                (owner, now + lease_seconds, row[0]),
            )
            claimed = conn.execute(f"{_RUN_SELECT} WHERE r.id = ?", (row[0],)).fetchone()
            return run_from_row(claimed, self._cipher)

        return await self._write(write)

    async def save_run_step(self, owner: str, step: RunStep, *, now: float) -> bool:
        params = run_step_params(step, owner=owner, now=now)
        return await self._write(lambda conn: conn.execute(_SAVE_RUN_STEP, params).rowcount > 0)

    async def next_run_due_at(self, *, now: float) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT MIN(CASE WHEN r.lease_expires_at > :now AND p.owner IS NOT NULL "
                "THEN MAX(r.due_at, r.lease_expires_at) ELSE r.due_at END) "
                "FROM runs r LEFT JOIN replicas p ON p.owner = r.lease_owner "
                "AND p.alive_until > :now WHERE r.due_at IS NOT NULL",
                {"now": now},
            ).fetchone()
            return float(row[0]) if row[0] is not None else None

        return await self._read(read)

    # -- the fleet ----------------------------------------------------------------------------
    async def subscribe(self, on_work: Callable[[], None]) -> None:
        # One process writes this file, so its own commits are all the work there is to hear
        # about: ``on_work`` runs after each accept or redeliver of this store has committed.
        self._work.add(on_work)

    async def heartbeat(self, owner: str, *, now: float, ttl: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO replicas (owner, alive_until) VALUES (?, ?) "
                "ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until",
                (owner, now + ttl),
            )
            conn.execute("DELETE FROM replicas WHERE alive_until <= ? AND owner != ?", (now, owner))
            row = conn.execute(
                "SELECT COUNT(*) FROM replicas WHERE alive_until > ? AND owner != ?", (now, owner)
            ).fetchone()
            return 1 + int(row[0])

        return await self._write(write)

    async def forget_replica(self, owner: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM replicas WHERE owner = ?", (owner,))
        )

    async def pause_all(self, *, until: float) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE fleet SET paused_until = MAX(paused_until, ?) WHERE id = 1", (until,)
            )
        )

    async def paused_until(self) -> float:
        def read(conn: sqlite3.Connection) -> float:
            row = conn.execute("SELECT paused_until FROM fleet WHERE id = 1").fetchone()
            return float(row[0])

        return await self._read(read)

    async def database_time(self) -> float | None:
        # The file is on this machine: its clock is this process's, nothing to correct.
        return None


_OVERVIEW_STATUSES = (
    "SELECT status, COUNT(*) AS n, MIN(CASE WHEN status = 'pending' THEN created_at END) "
    "AS oldest FROM results WHERE tenant = ? GROUP BY status"
)
# Attempts by time first (attempts_at), then kept only for the tenant's results.
_OVERVIEW_ATTEMPTS = (
    "SELECT CAST((a.at - :since) / :slot AS INTEGER) AS slot, a.outcome AS outcome, "
    "COUNT(*) AS n FROM attempts a JOIN results r ON r.id = a.result_id "
    "WHERE a.at >= :since AND a.at <= :now AND r.tenant = :tenant "
    "GROUP BY 1, 2 ORDER BY 1, 2"
)

_RUN_SELECT = (
    "SELECT r.*, (SELECT s.status FROM results s WHERE s.tenant = r.tenant "
    "AND s.workflow_id = r.workflow_id) AS result_status FROM runs r"
)

# A change that arrived while the engine held the run (progress, a result) wins: the run is due
# again at once, and its status stays what the change made it.
_SAVE_RUN_STEP = """
UPDATE runs SET
    status = CASE WHEN status = :seen_status
                   AND (progress_version = :seen_version OR :status != 'abandoned')
                  THEN :status ELSE status END,
    final_shown = CASE WHEN status = :seen_status THEN :final_shown ELSE final_shown END,
    shown_version = :shown_version, progress_route = :progress_route,
    progress_message_id = :progress_message_id, next_edit_at = :next_edit_at,
    abandon_notified = :abandon_notified, channel_dead = :channel_dead,
    coalesced = coalesced + :coalesced, failures = :failures,
    due_at = CASE WHEN progress_version != :seen_version OR status != :seen_status
                  THEN :now ELSE :due_at END,
    updated_at = :now, lease_owner = NULL, lease_expires_at = NULL
WHERE tenant = :tenant AND workflow_id = :workflow_id AND lease_owner = :owner
"""


def _finish_run(
    conn: sqlite3.Connection,
    tenant: str,
    workflow_id: str,
    *,
    error: tuple[str, str] | None,
    now: float,
) -> bool:
    stage, message = error if error is not None else (None, None)
    changed: int = conn.execute(
        "UPDATE runs SET status = :status, error_stage = :stage, "
        "error_message = :message, last_activity_at = :now, updated_at = :now, "
        "final_shown = 0, due_at = :now WHERE tenant = :tenant "
        "AND workflow_id = :workflow_id "
        "AND status IN ('running', 'handed_off', 'abandoned')",
        {
            "status": "failed" if error is not None else "finished",
            "stage": stage,
            "message": message,
            "now": now,
            "tenant": tenant,
            "workflow_id": workflow_id,
        },
    ).rowcount
    return changed > 0


def _run_row(conn: sqlite3.Connection, tenant: str, workflow_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        f"{_RUN_SELECT} WHERE r.tenant = ? AND r.workflow_id = ?", (tenant, workflow_id)
    ).fetchone()
    return row


def _result_row(conn: sqlite3.Connection, tenant: str, workflow_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM results WHERE tenant = ? AND workflow_id = ?", (tenant, workflow_id)
    ).fetchone()
    return row


def _result_id(conn: sqlite3.Connection, tenant: str, workflow_id: str) -> int:
    row = conn.execute(
        "SELECT id FROM results WHERE tenant = ? AND workflow_id = ?", (tenant, workflow_id)
    ).fetchone()
    if row is None:
        raise ResultGone(f"no result {workflow_id!r}")
    return int(row[0])


def _bot_may_take(conn: sqlite3.Connection, columns: dict[str, Any]) -> bool:
    """``bot_fallback_sql`` for a row about to be inserted."""
    row = conn.execute(
        "SELECT 1 WHERE "
        + bot_fallback_sql(":tenant", ":channel_id", ":requester_channel_id", ":requester_user_id"),
        {
            "tenant": columns["tenant"],
            "channel_id": columns["channel_id"],
            "requester_channel_id": columns["requester_channel_id"],
            "requester_user_id": columns["requester_user_id"],
        },
    ).fetchone()
    return row is not None


def _dead_reason(
    conn: sqlite3.Connection, webhook_id: str | None, hashed_token: str | None
) -> str | None:
    """Why this webhook is dead for this token; never dead without a webhook (NULL matches
    nothing)."""
    row = conn.execute(
        "SELECT reason FROM dead_webhooks WHERE webhook_id = ? AND token_hash = ?",
        (webhook_id, hashed_token),
    ).fetchone()
    return str(row[0]) if row is not None else None


def _insert_attempt(
    conn: sqlite3.Connection, tenant: str, workflow_id: str, attempt: Attempt
) -> int:
    result_id = _result_id(conn, tenant, workflow_id)
    conn.execute(
        "INSERT INTO attempts (result_id, at, part, route, outcome, http_status, discord_code, "
        "duration_ms, error, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            result_id,
            attempt.at,
            attempt.part,
            attempt.route.value,
            attempt.outcome.value,
            attempt.http_status,
            attempt.discord_code,
            attempt.duration_ms,
            attempt.error,
            int(attempt.counts),
        ),
    )
    conn.execute(
        f"UPDATE results SET attempts = attempts + ?, {_NOT_IN_FLIGHT} WHERE id = ?",
        (int(attempt.counts), result_id),
    )
    return result_id


def _reseal_batch(
    conn: sqlite3.Connection, *, cipher: TokenCipher, column: SealedColumn, done: str, limit: int
) -> tuple[int, int]:
    """One batch of :meth:`SQLiteStore.reseal_tokens`: how many values needed it, how many
    this batch changed."""
    keys = ", ".join(column.keys)
    rows = conn.execute(
        f"SELECT {keys}, {column.column} FROM {column.table} "
        f"WHERE {column.column} IS NOT NULL AND substr({column.column}, 1, ?) != ? LIMIT ?",
        (len(done), done, limit),
    ).fetchall()
    match = " AND ".join(f"{key} = ?" for key in column.keys)
    update = f"UPDATE {column.table} SET {column.column} = ? WHERE {match} AND {column.column} = ?"
    return len(rows), sum(conn.execute(update, c).rowcount for c in resealed(cipher, column, rows))


# A listing's column tests, ``{c}`` the table's alias, and which of its values each ``?`` takes.
_LISTING_TESTS = {
    "tenant": ("{c}tenant = ?", (0,)),
    "status": ("{c}status = ?", (0,)),
    "url": ("{c}url = ?", (0,)),
    "requester_id": ("{c}requester_user_id = ?", (0,)),
    "since": ("{c}created_at >= ?", (0,)),
    "until": ("{c}created_at < ?", (0,)),
    # SQLite's lower() folds ASCII letters only, as like_pattern expects
    "text": (
        "(lower({c}workflow_id) LIKE ? ESCAPE '\\' OR lower({c}url) LIKE ? ESCAPE '\\')",
        (0, 0),
    ),
    # the cursor's time is compared twice: "earlier, or as early with a smaller id"
    "cursor": ("({c}created_at < ? OR ({c}created_at = ? AND {c}id < ?))", (0, 0, 1)),
}


def _listing(
    select: str,
    alias: str,
    tenant: str,
    filters: ResultFilter | RunFilter,
    cursor: str | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """``select`` narrowed to a listing's filters, newest first, one row past ``limit``."""
    where: list[str] = []
    params: list[Any] = []
    for name, values in listing_filters(tenant, filters, cursor):
        test, takes = _LISTING_TESTS[name]
        where.append(test.format(c=alias))
        params.extend(values[i] for i in takes)
    order = f"ORDER BY {alias}created_at DESC, {alias}id DESC LIMIT ?"
    return f"{select} WHERE {' AND '.join(where)} {order}", [*params, limit + 1]


def _sealed_key_ids(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for c in SEALED_COLUMNS for row in conn.execute(sealed_key_ids_sql(c))}


def _record(conn: sqlite3.Connection, row: sqlite3.Row, cipher: TokenCipher) -> ResultRecord:
    messages = conn.execute(
        "SELECT * FROM messages WHERE result_id = ? ORDER BY part", (row["id"],)
    ).fetchall()
    (made,) = conn.execute(
        "SELECT count(*) FROM attempts WHERE result_id = ?", (row["id"],)
    ).fetchone()
    return record_from_row(row, messages, cipher, attempts_made=made)
