-- Results, their delivery attempts and messages, lanes with leases, destinations, API keys, and
-- the fleet's shared state (live replicas, a fleet-wide pause): the SQLite schema, typed.
--
-- Times are Unix seconds in DOUBLE PRECISION, as the store's API speaks them: a float8 holds a
-- Python float exactly, so what is written reads back equal (timestamptz would round to
-- microseconds and need converting at every boundary).
-- ``results`` and ``message`` are JSON, not JSONB: JSON keeps the submitted text as it is (key
-- order, which decides the summary's headline fields; number spelling; escapes such as a lone
-- surrogate or \u0000, which JSONB refuses), still checks that it is JSON, and costs no
-- conversion on the hot insert. Nothing queries inside them.

CREATE TABLE results (
    id                   BIGSERIAL        PRIMARY KEY,
    tenant               TEXT             NOT NULL,
    workflow_id          TEXT             NOT NULL,
    body_hash            TEXT             NOT NULL,
    status               TEXT             NOT NULL
                         CHECK (status IN ('pending', 'delivered', 'orphaned')),
    results              JSON             NOT NULL,
    url                  TEXT,
    depth                TEXT,
    message              JSON,
    destination_name     TEXT,
    webhook_id           TEXT,
    webhook_token        TEXT,
    thread_id            TEXT,
    application_id       TEXT,
    interaction_id       TEXT,
    interaction_token    TEXT,
    requester_user_id    TEXT,
    requester_guild_id   TEXT,
    requester_channel_id TEXT,
    lane                 TEXT             NOT NULL,
    created_at           DOUBLE PRECISION NOT NULL,
    updated_at           DOUBLE PRECISION NOT NULL,
    next_attempt_at      DOUBLE PRECISION,
    delivered_at         DOUBLE PRECISION,
    attempts             INTEGER          NOT NULL DEFAULT 0,
    last_error           TEXT,
    orphan_reason        TEXT,
    UNIQUE (tenant, workflow_id)
);
CREATE INDEX results_tenant_created ON results (tenant, created_at DESC, id DESC);
CREATE INDEX results_due ON results (next_attempt_at) WHERE status = 'pending';
CREATE INDEX results_lane_pending ON results (lane, next_attempt_at) WHERE status = 'pending';
CREATE INDEX results_created ON results (created_at);

CREATE TABLE attempts (
    id           BIGSERIAL        PRIMARY KEY,
    result_id    BIGINT           NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    at           DOUBLE PRECISION NOT NULL,
    part         INTEGER          NOT NULL,
    route        TEXT             NOT NULL,
    outcome      TEXT             NOT NULL,
    http_status  INTEGER,
    discord_code INTEGER,
    duration_ms  DOUBLE PRECISION NOT NULL,
    error        TEXT,
    counts       BOOLEAN          NOT NULL
);
CREATE INDEX attempts_result ON attempts (result_id, id);

CREATE TABLE messages (
    result_id    BIGINT           NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    part         INTEGER          NOT NULL,
    message_id   TEXT             NOT NULL,
    route        TEXT             NOT NULL,
    delivered_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (result_id, part)
);

-- Unlike SQLite, every lane a result names has a row from its accept on: claims lock lane rows
-- (FOR UPDATE SKIP LOCKED), and a row that does not exist cannot be locked.
CREATE TABLE lanes (
    lane             TEXT PRIMARY KEY,
    lease_owner      TEXT,
    lease_expires_at DOUBLE PRECISION,
    dead_reason      TEXT,
    dead_at          DOUBLE PRECISION
);

CREATE TABLE destinations (
    tenant        TEXT             NOT NULL,
    name          TEXT             NOT NULL,
    webhook_id    TEXT             NOT NULL,
    webhook_token TEXT             NOT NULL,
    thread_id     TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE api_keys (
    key_id     TEXT             PRIMARY KEY,
    tenant     TEXT             NOT NULL,
    key_hash   TEXT             NOT NULL UNIQUE,
    label      TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);

CREATE TABLE replicas (
    owner       TEXT             PRIMARY KEY,
    alive_until DOUBLE PRECISION NOT NULL
);

CREATE TABLE fleet (
    id           INTEGER          PRIMARY KEY CHECK (id = 1),
    paused_until DOUBLE PRECISION NOT NULL
);
INSERT INTO fleet (id, paused_until) VALUES (1, 0);

-- Enter a lane on behalf of a result about to be queued in it (accept, redeliver): make sure
-- the lane has a row, and return why it is dead, or NULL.
--
-- The shared lock (against kill_lane's exclusive one, both on the lane's key) closes a race:
-- without it a result could be queued in a lane that kill_lane is killing, unseen by both, and
-- stay pending forever. The function is VOLATILE, so in READ COMMITTED each statement in it
-- takes a fresh snapshot: the dead_reason read below comes after the lock, even when it had to
-- wait for a kill to commit. Shared locks do not block each other, so accepts run side by side.
CREATE FUNCTION relay_enter_lane(target TEXT) RETURNS TEXT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    reason TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1381125209, hashtext(target));
    INSERT INTO lanes (lane) VALUES (target) ON CONFLICT (lane) DO NOTHING;
    SELECT lanes.dead_reason INTO reason FROM lanes WHERE lanes.lane = target;
    RETURN reason;
END
$$;
