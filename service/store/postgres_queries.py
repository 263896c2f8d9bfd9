"""Every SQL statement of the PostgreSQL store, named for what it does.

Module constants rather than a ``.sql`` file: the wheel ships only ``migrations/*/*.sql`` as
package data, constants need no loader, and ``test_postgres_migrations`` prepares each of them
against the migrated schema, so a query that drifts from the schema fails there.
Parameters are positional (``$1``); each constant's comment lists them.
"""

from __future__ import annotations

from typing import Final

from service.store.base import HAS_BOT_FALLBACK_SQL as _HAS_BOT_FALLBACK
from service.store.base import bot_fallback_sql

# The advisory-lock key space of webhooks (two-int form, the second the webhook id's hashtext);
# ``relay_enter_webhook`` takes the shared lock of a webhook under this class id,
# ``KILL_WEBHOOK_LOCK`` the exclusive one.
WEBHOOK_LOCK_CLASS: Final = 1381125209
# One bigint key for migrations; the bigint and two-int key spaces do not overlap.
MIGRATION_LOCK: Final = 7_310_870_969_320_468_841
WORK_CHANNEL: Final = "relay_work"

# -- migrations ---------------------------------------------------------------------------------
LOCK_MIGRATIONS: Final = "SELECT pg_advisory_xact_lock($1::bigint)"
CREATE_SCHEMA_MIGRATIONS: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)
APPLIED_MIGRATIONS: Final = "SELECT version FROM schema_migrations"
RECORD_MIGRATION: Final = (
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3::float8)"
)

# -- results --------------------------------------------------------------------------------------
# The columns ``base.result_columns`` fills, in the order of ACCEPT's first parameters.
ACCEPT_COLUMNS: Final = (
    "tenant",
    "workflow_id",
    "body_hash",
    "results",
    "url",
    "depth",
    "message",
    "destination_name",
    "webhook_id",
    "webhook_token",
    "webhook_token_hash",
    "thread_id",
    "application_id",
    "interaction_id",
    "interaction_token",
    "requester_user_id",
    "requester_guild_id",
    "requester_channel_id",
    "lane",
    "error_stage",
    "error_message",
    "channel_id",
    "dm_fallback",
)
_N = len(ACCEPT_COLUMNS)
_LANE = ACCEPT_COLUMNS.index("lane") + 1
_WEBHOOK_ID = ACCEPT_COLUMNS.index("webhook_id") + 1
_TOKEN_HASH = ACCEPT_COLUMNS.index("webhook_token_hash") + 1
_NOW = _N + 1
# A result a bot route may take is queued even for a dead webhook (over the new row's values).
_BOT_FALLBACK = bot_fallback_sql(
    *(
        f"${ACCEPT_COLUMNS.index(name) + 1}::text"
        for name in ("tenant", "channel_id", "requester_channel_id", "requester_user_id")
    )
)
_CASTS = {"results": "::json", "message": "::json", "dm_fallback": "::boolean"}
_VALUES = ", ".join(f"${i}{_CASTS.get(name, '')}" for i, name in enumerate(ACCEPT_COLUMNS, start=1))

# $1..$N ACCEPT_COLUMNS, then now, wake, merged. One statement, one round trip: enter the
# webhook (orphaned at once if it is dead for this token, unless a bot route may take it),
# insert unless the workflow id exists (then no status comes back and the caller reads the
# existing one) or names a run the result was not merged with (``run_found``: the caller merges
# and accepts again, in a transaction), and (wake) announce the new result to the fleet if it is
# pending, delivered on commit. Always one row.
ACCEPT: Final = f"""
WITH run AS (
    SELECT EXISTS (SELECT 1 FROM runs WHERE tenant = $1 AND workflow_id = $2) AS found
), entered AS (
    SELECT relay_enter_webhook(${_LANE}, ${_WEBHOOK_ID}, ${_TOKEN_HASH}) AS dead_reason
), lane AS (
    SELECT CASE WHEN {_BOT_FALLBACK} THEN NULL ELSE entered.dead_reason END AS dead_reason
    FROM entered
), inserted AS (
    INSERT INTO results ({", ".join(ACCEPT_COLUMNS)},
                         status, orphan_reason, next_attempt_at, created_at, updated_at)
    SELECT {_VALUES},
           CASE WHEN lane.dead_reason IS NULL THEN 'pending' ELSE 'orphaned' END,
           lane.dead_reason,
           CASE WHEN lane.dead_reason IS NULL THEN ${_NOW}::float8 END,
           ${_NOW}::float8, ${_NOW}::float8
    FROM lane, run
    WHERE ${_NOW + 2}::boolean OR NOT run.found
    ON CONFLICT (tenant, workflow_id) DO NOTHING
    RETURNING status, orphan_reason, next_attempt_at
), woken AS (
    SELECT pg_notify('{WORK_CHANNEL}', '') FROM inserted
    WHERE status = 'pending' AND ${_NOW + 1}::boolean
)
SELECT i.status, i.orphan_reason, i.next_attempt_at, (SELECT count(*) FROM woken) AS woken,
       run.found AS run_found
FROM run LEFT JOIN inserted i ON true
"""

# A results row with its delivered parts as a JSON array (one round trip for a whole record).
_RESULT_WITH_MESSAGES = """
SELECT r.*,
       (SELECT json_agg(json_build_object('part', m.part, 'message_id', m.message_id,
                                          'route', m.route, 'delivered_at', m.delivered_at)
                        ORDER BY m.part)
        FROM messages m WHERE m.result_id = r.id) AS delivered_parts,
       (SELECT count(*) FROM attempts a WHERE a.result_id = r.id) AS attempts_made
FROM results r
"""

# $1 tenant, $2 workflow_id
GET_RESULT: Final = _RESULT_WITH_MESSAGES + "WHERE r.tenant = $1 AND r.workflow_id = $2"

# LIST_RESULTS_WHERE is completed with the filters, then LIST_RESULTS_ORDER ($n limit).
LIST_RESULTS: Final = _RESULT_WITH_MESSAGES + "WHERE "
LIST_RESULTS_FILTERS: Final = {
    "tenant": "r.tenant = ${}",
    "status": "r.status = ${}",
    "url": "r.url = ${}",
    "requester_id": "r.requester_user_id = ${}",
    "since": "r.created_at >= ${}::float8",
    "until": "r.created_at < ${}::float8",
    # lower() in the C collation folds ASCII letters only, as like_pattern expects
    "text": (
        "(lower(r.workflow_id COLLATE \"C\") LIKE ${0} ESCAPE '\\' "
        "OR lower(r.url COLLATE \"C\") LIKE ${0} ESCAPE '\\')"
    ),
    "cursor": "(r.created_at < ${0}::float8 OR (r.created_at = ${0}::float8 AND r.id < ${1}))",
}
LIST_RESULTS_ORDER: Final = " ORDER BY r.created_at DESC, r.id DESC LIMIT ${}"

# $1 tenant, $2 workflow_id: one row with NULL attempt columns when there is none yet.
LIST_ATTEMPTS: Final = """
SELECT a.* FROM results r LEFT JOIN attempts a ON a.result_id = r.id
WHERE r.tenant = $1 AND r.workflow_id = $2
ORDER BY a.id
"""

# $1 tenant, $2 workflow_id
DELETE_RESULT: Final = "DELETE FROM results WHERE tenant = $1 AND workflow_id = $2"

# $1 before
PURGE: Final = "DELETE FROM results WHERE created_at < $1::float8 AND status <> 'pending'"
# $1 before
PURGE_RUNS: Final = (
    "DELETE FROM runs WHERE created_at < $1::float8 "
    "AND status IN ('finished', 'failed', 'abandoned')"
)

# -- destinations and API keys -----------------------------------------------------------------
# $1 tenant, $2 name, $3 webhook_id, $4 webhook_token, $5 thread_id, $6 now; true when new.
PUT_DESTINATION: Final = """
INSERT INTO destinations (tenant, name, webhook_id, webhook_token, thread_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6::float8)
ON CONFLICT (tenant, name) DO UPDATE SET webhook_id = excluded.webhook_id,
    webhook_token = excluded.webhook_token, thread_id = excluded.thread_id
RETURNING (xmax = 0) AS created
"""
# $1 tenant, $2 name
GET_DESTINATION: Final = "SELECT * FROM destinations WHERE tenant = $1 AND name = $2"
# $1 tenant
LIST_DESTINATIONS: Final = "SELECT * FROM destinations WHERE tenant = $1 ORDER BY name"
# $1 tenant, $2 name
DELETE_DESTINATION: Final = "DELETE FROM destinations WHERE tenant = $1 AND name = $2"

# -- the tenants' bots ---------------------------------------------------------------------------
# The parameters of PUT_BOT, by name as ``base.bot_params`` gives them.
PUT_BOT_PARAMS: Final = ("tenant", "bot_id", "username", "token", "dm_fallback", "source", "now")
PUT_BOT: Final = """
INSERT INTO bots (tenant, bot_id, username, token, dm_fallback, source, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::boolean, $6, $7::float8, $7::float8)
ON CONFLICT (tenant) DO UPDATE SET bot_id = excluded.bot_id, username = excluded.username,
    token = excluded.token, dm_fallback = excluded.dm_fallback, source = excluded.source,
    updated_at = excluded.updated_at
"""
# $1 tenant
GET_BOT: Final = "SELECT * FROM bots WHERE tenant = $1"
LIST_BOTS: Final = "SELECT * FROM bots ORDER BY tenant"
# $1 tenant
DELETE_BOT: Final = "DELETE FROM bots WHERE tenant = $1"

# $1 key_id, $2 tenant, $3 key_hash, $4 label, $5 created_at
ADD_API_KEY: Final = (
    "INSERT INTO api_keys (key_id, tenant, key_hash, label, created_at) "
    "VALUES ($1, $2, $3, $4, $5::float8)"
)
LIST_API_KEYS: Final = "SELECT * FROM api_keys ORDER BY created_at, key_id"
# $1 now, $2 key_id
REVOKE_API_KEY: Final = (
    "UPDATE api_keys SET revoked_at = $1::float8 WHERE key_id = $2 AND revoked_at IS NULL"
)
# $1 key_hash
TENANT_FOR_KEY: Final = "SELECT tenant FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"

# -- delivery -------------------------------------------------------------------------------------
# Whatever records what became of a part in flight clears the mark (see MARK_IN_FLIGHT).
_NOT_IN_FLIGHT = "in_flight_part = NULL, in_flight_route = NULL, in_flight_at = NULL"

# $1 now, $2 owner, $3 lease_seconds. The lane of the result due first whose lane is free:
# never leased, released, run out, or held by another replica that stopped heartbeating (never
# one ``owner`` holds itself). SKIP LOCKED passes over lanes another replica is claiming this
# instant; the row lock re-checks the condition on the newest row version, so a lane claimed
# and committed since this statement's snapshot is passed over too: one live owner per lane,
# whatever the concurrency. The re-check of a new owner's heartbeat must not use this
# statement's snapshot, older than that owner's heartbeat may be: relay_replica_alive reads
# with a fresh one. The CASE keeps it last: the hashed list of live replicas (this snapshot's)
# already rules out the owners alive in it, so the function runs only for lanes that look
# abandoned, once per row and at no other time.
CLAIM_LANE: Final = """
WITH pick AS (
    SELECT l.lane
    FROM results r JOIN lanes l ON l.lane = r.lane
    WHERE r.status = 'pending' AND r.next_attempt_at <= $1::float8
      AND CASE WHEN l.lease_owner IS NULL OR l.lease_expires_at <= $1::float8 THEN true
               WHEN l.lease_owner = $2 THEN false
               WHEN l.lease_owner IN (SELECT owner FROM replicas
                                      WHERE alive_until > $1::float8) THEN false
               ELSE NOT relay_replica_alive(l.lease_owner, $1::float8) END
    ORDER BY r.next_attempt_at
    LIMIT 1
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE lanes SET lease_owner = $2, lease_expires_at = $1::float8 + $3::float8
FROM pick WHERE lanes.lane = pick.lane
RETURNING lanes.lane
"""

# $1 now, $2 lease_seconds, $3 lane, $4 owner
RENEW_LEASE: Final = """
UPDATE lanes SET lease_expires_at = $1::float8 + $2::float8
WHERE lane = $3 AND lease_owner = $4 AND lease_expires_at > $1::float8
"""

# $1 lane, $2 owner
RELEASE_LANE: Final = (
    "UPDATE lanes SET lease_owner = NULL, lease_expires_at = NULL "
    "WHERE lane = $1 AND lease_owner = $2"
)

# $1 lane, $2 now, $3 limit
DUE_RESULTS: Final = _RESULT_WITH_MESSAGES + (
    "WHERE r.lane = $1 AND r.status = 'pending' AND r.next_attempt_at <= $2::float8 "
    "ORDER BY r.created_at, r.id LIMIT $3"
)

# $1 now. A lease is live while it has not run out and its owner heartbeats (p matches).
NEXT_DUE_AT: Final = """
SELECT min(CASE WHEN l.lease_expires_at > $1::float8 AND p.owner IS NOT NULL
                THEN greatest(r.next_attempt_at, l.lease_expires_at)
                ELSE r.next_attempt_at END)
FROM results r LEFT JOIN lanes l ON l.lane = r.lane
LEFT JOIN replicas p ON p.owner = l.lease_owner AND p.alive_until > $1::float8
WHERE r.status = 'pending'
"""

# $1 tenant, $2 workflow_id, $3 part, $4 route, $5 now. Marks only a pending result; returns
# the result id whatever its status, no row if there is none.
MARK_IN_FLIGHT: Final = """
WITH target AS (
    SELECT id, status FROM results WHERE tenant = $1 AND workflow_id = $2
), marked AS (
    UPDATE results SET in_flight_part = $3, in_flight_route = $4, in_flight_at = $5::float8
    FROM target WHERE results.id = target.id AND target.status = 'pending'
)
SELECT id FROM target
"""

_ATTEMPT_INSERT = """
    INSERT INTO attempts (result_id, at, part, route, outcome, http_status, discord_code,
                          duration_ms, error, counts)
    SELECT target.id, $3::float8, $4, $5, $6, $7, $8, $9::float8, $10, $11 FROM target
"""

# $1 tenant, $2 workflow_id, $3..$11 the attempt (at, part, route, outcome, http_status,
# discord_code, duration_ms, error, counts). Returns the result id, no row if there is none.
RECORD_ATTEMPT: Final = f"""
WITH target AS (
    SELECT id FROM results WHERE tenant = $1 AND workflow_id = $2
), attempt AS ({_ATTEMPT_INSERT}
), counted AS (
    UPDATE results SET attempts = attempts + CASE WHEN $11::boolean THEN 1 ELSE 0 END,
        {_NOT_IN_FLIGHT}
    FROM target WHERE results.id = target.id
)
SELECT id FROM target
"""

# As RECORD_ATTEMPT, then $12 part, $13 message_id, $14 route, $15 now, $16 finished: the
# attempt, the delivered part and (finished) the status in one statement, one transaction.
RECORD_DELIVERY: Final = f"""
WITH target AS (
    SELECT id FROM results WHERE tenant = $1 AND workflow_id = $2
), attempt AS ({_ATTEMPT_INSERT}
), part AS (
    INSERT INTO messages (result_id, part, message_id, route, delivered_at)
    SELECT target.id, $12, $13, $14, $15::float8 FROM target
    ON CONFLICT (result_id, part) DO UPDATE SET message_id = excluded.message_id,
        route = excluded.route, delivered_at = excluded.delivered_at
), settled AS (
    UPDATE results SET
        attempts = attempts + CASE WHEN $11::boolean THEN 1 ELSE 0 END,
        status = CASE WHEN $16::boolean THEN 'delivered' ELSE status END,
        delivered_at = CASE WHEN $16::boolean THEN $15::float8 ELSE delivered_at END,
        next_attempt_at = CASE WHEN $16::boolean THEN NULL ELSE next_attempt_at END,
        orphan_reason = CASE WHEN $16::boolean THEN NULL ELSE orphan_reason END,
        updated_at = CASE WHEN $16::boolean THEN $15::float8 ELSE updated_at END,
        {_NOT_IN_FLIGHT}
    FROM target
    WHERE results.id = target.id
)
SELECT id FROM target
"""

# $1 tenant, $2 workflow_id, $3 now
MARK_DELIVERED: Final = f"""
UPDATE results SET status = 'delivered', delivered_at = $3::float8, next_attempt_at = NULL,
    orphan_reason = NULL, updated_at = $3::float8, {_NOT_IN_FLIGHT}
WHERE tenant = $1 AND workflow_id = $2 AND status = 'pending'
"""

# $1 tenant, $2 workflow_id, $3 at, $4 error, $5 now
SCHEDULE_RETRY: Final = f"""
UPDATE results SET status = 'pending', next_attempt_at = $3::float8, last_error = $4,
    updated_at = $5::float8, {_NOT_IN_FLIGHT}
WHERE tenant = $1 AND workflow_id = $2 AND status = 'pending'
"""

# $1 tenant, $2 workflow_id, $3 reason, $4 now
ORPHAN: Final = f"""
UPDATE results SET status = 'orphaned', orphan_reason = $3, next_attempt_at = NULL,
    last_error = COALESCE(last_error, $3), updated_at = $4::float8, {_NOT_IN_FLIGHT}
WHERE tenant = $1 AND workflow_id = $2 AND status = 'pending'
"""

# $1 tenant, $2 workflow_id: the row redeliver changes, locked until it commits.
LOCK_RESULT: Final = "SELECT * FROM results WHERE tenant = $1 AND workflow_id = $2 FOR UPDATE"
# $1 lane, $2 webhook_id, $3 webhook_token_hash: why the webhook is dead for this token, or
# NULL (and the lane has a row from now on).
ENTER_WEBHOOK: Final = "SELECT relay_enter_webhook($1, $2, $3)"
# $1 result id
DELETE_MESSAGES: Final = "DELETE FROM messages WHERE result_id = $1"
# $1 id, $2 now, $3 destination_name, $4 webhook_id, $5 webhook_token, $6 webhook_token_hash,
# $7 thread_id, $8 lane
REQUEUE: Final = f"""
UPDATE results SET status = 'pending', next_attempt_at = $2::float8, attempts = 0,
    orphan_reason = NULL, delivered_at = NULL, updated_at = $2::float8,
    delivery_round = delivery_round + 1,
    destination_name = $3, webhook_id = $4, webhook_token = $5, webhook_token_hash = $6,
    thread_id = $7, lane = $8, {_NOT_IN_FLIGHT}
WHERE id = $1
"""
# Delivered to every listening replica when the transaction commits, not before.
WAKE: Final = f"NOTIFY {WORK_CHANNEL}"

# $1 webhook_id. The exclusive webhook lock waits for accepts and redeliveries entering the
# webhook (see relay_enter_webhook) and holds new ones back until the kill commits; the
# statements after it take their snapshots once it is held, so they see every result that
# entered before.
KILL_WEBHOOK_LOCK: Final = f"SELECT pg_advisory_xact_lock({WEBHOOK_LOCK_CLASS}, hashtext($1))"
# $1 webhook_id, $2 token_hash, $3 reason, $4 now
KILL_WEBHOOK: Final = """
INSERT INTO dead_webhooks (webhook_id, token_hash, reason, dead_at)
VALUES ($1, $2, $3, $4::float8)
ON CONFLICT (webhook_id, token_hash) DO UPDATE SET reason = excluded.reason,
    dead_at = excluded.dead_at
"""
# $1 webhook_id, $2 token_hash, $3 reason, $4 now: every thread of it, every tenant.
ORPHAN_WEBHOOK: Final = f"""
UPDATE results SET status = 'orphaned', orphan_reason = $3, next_attempt_at = NULL,
    updated_at = $4::float8, {_NOT_IN_FLIGHT}
WHERE webhook_id = $1 AND webhook_token_hash = $2 AND status = 'pending'
    AND NOT {_HAS_BOT_FALLBACK}
"""
# $1 webhook_id, $2 token_hash
REVIVE_WEBHOOK: Final = "DELETE FROM dead_webhooks WHERE webhook_id = $1 AND token_hash = $2"
# $1 webhook_id, $2 token_hash
DEAD_REASON: Final = "SELECT reason FROM dead_webhooks WHERE webhook_id = $1 AND token_hash = $2"

# $1 webhook_id, $2 channel_id, $3 now
LEARN_WEBHOOK_CHANNEL: Final = """
INSERT INTO webhook_channels (webhook_id, channel_id, learned_at) VALUES ($1, $2, $3::float8)
ON CONFLICT (webhook_id) DO UPDATE SET channel_id = excluded.channel_id,
    learned_at = excluded.learned_at
WHERE webhook_channels.channel_id IS DISTINCT FROM excluded.channel_id
"""
# $1 webhook_id
WEBHOOK_CHANNEL: Final = "SELECT channel_id FROM webhook_channels WHERE webhook_id = $1"

COUNT_PENDING: Final = "SELECT count(*), min(created_at) FROM results WHERE status = 'pending'"

# $1 tenant.
OVERVIEW_STATUSES: Final = """
SELECT status, count(*) AS n, min(created_at) FILTER (WHERE status = 'pending') AS oldest
FROM results WHERE tenant = $1 GROUP BY status
"""
# $1 tenant, $2 since, $3 slot length, $4 now. Attempts by time first (attempts_at).
OVERVIEW_ATTEMPTS: Final = """
SELECT floor((a.at - $2) / $3)::int AS slot, a.outcome AS outcome, count(*) AS n
FROM attempts a JOIN results r ON r.id = a.result_id
WHERE a.at >= $2 AND a.at <= $4 AND r.tenant = $1
GROUP BY 1, 2 ORDER BY 1, 2
"""
# $1 now.
LIVE_REPLICAS: Final = "SELECT count(*) FROM replicas WHERE alive_until > $1"

# -- the fleet ------------------------------------------------------------------------------------
# $1 owner, $2 now, $3 ttl. Expired replicas are deleted with SKIP LOCKED so that replicas
# cleaning up at once never wait for (or deadlock on) each other.
HEARTBEAT: Final = """
WITH beat AS (
    INSERT INTO replicas (owner, alive_until) VALUES ($1, $2::float8 + $3::float8)
    ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until
), expired AS (
    DELETE FROM replicas WHERE owner IN (
        SELECT owner FROM replicas WHERE alive_until <= $2::float8 AND owner <> $1
        FOR UPDATE SKIP LOCKED
    )
)
SELECT 1 + count(*) FROM replicas WHERE alive_until > $2::float8 AND owner <> $1
"""
# $1 owner
FORGET_REPLICA: Final = "DELETE FROM replicas WHERE owner = $1"
# $1 until
PAUSE_ALL: Final = "UPDATE fleet SET paused_until = greatest(paused_until, $1::float8) WHERE id = 1"
PAUSED_UNTIL: Final = "SELECT paused_until FROM fleet WHERE id = 1"
# The server's clock as it reads now (clock_timestamp, not the transaction's now()).
DATABASE_TIME: Final = "SELECT extract(epoch FROM clock_timestamp())::float8"
LISTEN: Final = f"LISTEN {WORK_CHANNEL}"
# A real write for readiness; it commits on its own, so it fails whenever a write would.
PROBE_WRITE: Final = "UPDATE write_probe SET probes = probes + 1 WHERE id = 1"


# -- runs -----------------------------------------------------------------------------------------
# The columns ``base.run_columns`` fills, in the order of START_RUN's first parameters.
RUN_COLUMNS: Final = (
    "tenant",
    "workflow_id",
    "body_hash",
    "title",
    "url",
    "depth",
    "destination_name",
    "webhook_id",
    "webhook_token",
    "thread_id",
    "application_id",
    "interaction_id",
    "interaction_token",
    "requester_user_id",
    "requester_guild_id",
    "requester_channel_id",
    "timeout_seconds",
    "handoff_at",
)
_R = len(RUN_COLUMNS)
_RUN_VALUES = ", ".join(
    f"${i}::float8" if name == "handoff_at" else f"${i}"
    for i, name in enumerate(RUN_COLUMNS, start=1)
)
_RUN_SELECT = """
SELECT r.*, (SELECT s.status FROM results s
             WHERE s.tenant = r.tenant AND s.workflow_id = r.workflow_id) AS result_status
"""

# $1..$18 RUN_COLUMNS, $19 now: the new run, or no row when the workflow id exists.
START_RUN: Final = f"""
WITH inserted AS (
    INSERT INTO runs ({", ".join(RUN_COLUMNS)},
                      status, created_at, updated_at, last_activity_at, due_at)
    VALUES ({_RUN_VALUES}, 'running', ${_R + 1}::float8, ${_R + 1}::float8, ${_R + 1}::float8,
            ${_R + 1}::float8)
    ON CONFLICT (tenant, workflow_id) DO NOTHING
    RETURNING *
), woken AS (
    SELECT pg_notify('{WORK_CHANNEL}', '') FROM inserted
)
{_RUN_SELECT}, (SELECT count(*) FROM woken) AS woken FROM inserted r
"""

# $1 tenant, $2 workflow_id
GET_RUN: Final = _RUN_SELECT + "FROM runs r WHERE r.tenant = $1 AND r.workflow_id = $2"

# LIST_RUNS is completed with LIST_RESULTS_FILTERS (the same column names), then
# LIST_RESULTS_ORDER.
LIST_RUNS: Final = _RUN_SELECT + "FROM runs r WHERE "

# $1 tenant, $2 workflow_id, $3 progress, $4 now: the run's status, whether it took the progress.
RECORD_PROGRESS: Final = f"""
WITH target AS (
    SELECT id, status FROM runs WHERE tenant = $1 AND workflow_id = $2
), updated AS (
    UPDATE runs SET progress = $3, progress_version = progress_version + 1,
        last_activity_at = $4::float8, updated_at = $4::float8,
        due_at = least(coalesce(due_at, greatest($4::float8, coalesce(next_edit_at, $4::float8))),
                       greatest($4::float8, coalesce(next_edit_at, $4::float8)))
    FROM target WHERE runs.id = target.id AND target.status IN ('running', 'handed_off')
    RETURNING runs.id
), woken AS (
    SELECT pg_notify('{WORK_CHANNEL}', '') FROM updated
)
SELECT target.status, (SELECT count(*) FROM updated) AS taken, (SELECT count(*) FROM woken)
FROM target
"""

# $1 tenant, $2 workflow_id, $3 status, $4 error stage, $5 error message, $6 now
FINISH_RUN: Final = f"""
WITH updated AS (
    UPDATE runs SET status = $3, error_stage = $4, error_message = $5,
        last_activity_at = $6::float8, updated_at = $6::float8, final_shown = false,
        due_at = $6::float8
    WHERE tenant = $1 AND workflow_id = $2 AND status IN ('running', 'handed_off', 'abandoned')
    RETURNING id
), woken AS (
    SELECT pg_notify('{WORK_CHANNEL}', '') FROM updated
)
SELECT (SELECT count(*) FROM updated) AS finished, (SELECT count(*) FROM woken)
"""

# $1 now, $2 owner, $3 lease_seconds: the claimed run, or no row.
CLAIM_DUE_RUN: Final = f"""
WITH pick AS (
    SELECT id FROM runs
    WHERE due_at <= $1::float8
      AND CASE WHEN lease_owner IS NULL OR lease_expires_at <= $1::float8 THEN true
               WHEN lease_owner = $2 THEN false
               WHEN lease_owner IN (SELECT owner FROM replicas
                                    WHERE alive_until > $1::float8) THEN false
               ELSE NOT relay_replica_alive(lease_owner, $1::float8) END
    ORDER BY due_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE runs SET lease_owner = $2, lease_expires_at = $1::float8 + $3::float8
    FROM pick WHERE runs.id = pick.id
    RETURNING runs.*
)
{_RUN_SELECT} FROM claimed r
"""

# The names of SAVE_RUN_STEP's parameters, in order (``base.run_step_params`` has them all).
SAVE_RUN_STEP_PARAMS: Final = (
    "tenant",
    "workflow_id",
    "owner",
    "now",
    "seen_version",
    "seen_status",
    "status",
    "shown_version",
    "progress_route",
    "progress_message_id",
    "next_edit_at",
    "final_shown",
    "abandon_notified",
    "channel_dead",
    "coalesced",
    "failures",
    "due_at",
)
# A change that arrived while the engine held the run (progress, a result) wins: the run is due
# again at once, and its status stays what the change made it.
SAVE_RUN_STEP: Final = """
UPDATE runs SET
    status = CASE WHEN status = $6 AND (progress_version = $5 OR $7 <> 'abandoned')
                  THEN $7 ELSE status END,
    final_shown = CASE WHEN status = $6 THEN $12::boolean ELSE final_shown END,
    shown_version = $8, progress_route = $9, progress_message_id = $10,
    next_edit_at = $11::float8, abandon_notified = $13, channel_dead = $14,
    coalesced = coalesced + $15, failures = $16,
    due_at = CASE WHEN progress_version <> $5 OR status <> $6 THEN $4::float8
                  ELSE $17::float8 END,
    updated_at = $4::float8, lease_owner = NULL, lease_expires_at = NULL
WHERE tenant = $1 AND workflow_id = $2 AND lease_owner = $3
"""

# $1 now
NEXT_RUN_DUE_AT: Final = """
SELECT min(CASE WHEN r.lease_expires_at > $1::float8 AND p.owner IS NOT NULL
                THEN greatest(r.due_at, r.lease_expires_at)
                ELSE r.due_at END)
FROM runs r LEFT JOIN replicas p ON p.owner = r.lease_owner AND p.alive_until > $1::float8
WHERE r.due_at IS NOT NULL
"""
