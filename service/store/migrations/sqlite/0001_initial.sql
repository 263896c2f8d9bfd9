-- Results, their delivery attempts and messages, lanes with leases, destinations and API keys.
-- Times are Unix seconds (REAL).

CREATE TABLE results (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant               TEXT    NOT NULL,
    workflow_id          TEXT    NOT NULL,
    body_hash            TEXT    NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'orphaned')),
    results              TEXT    NOT NULL,
    url                  TEXT,
    depth                TEXT,
    message              TEXT,
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
    lane                 TEXT    NOT NULL,
    created_at           REAL    NOT NULL,
    updated_at           REAL    NOT NULL,
    next_attempt_at      REAL,
    delivered_at         REAL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    orphan_reason        TEXT,
    UNIQUE (tenant, workflow_id)
);
CREATE INDEX results_tenant_created ON results (tenant, created_at DESC, id DESC);
CREATE INDEX results_due ON results (next_attempt_at) WHERE status = 'pending';
CREATE INDEX results_lane_pending ON results (lane, next_attempt_at) WHERE status = 'pending';
CREATE INDEX results_created ON results (created_at);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id    INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    at           REAL    NOT NULL,
    part         INTEGER NOT NULL,
    route        TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    http_status  INTEGER,
    discord_code INTEGER,
    duration_ms  REAL    NOT NULL,
    error        TEXT,
    counts       INTEGER NOT NULL
);
CREATE INDEX attempts_result ON attempts (result_id, id);

CREATE TABLE messages (
    result_id    INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    part         INTEGER NOT NULL,
    message_id   TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    delivered_at REAL    NOT NULL,
    PRIMARY KEY (result_id, part)
);

CREATE TABLE lanes (
    lane             TEXT PRIMARY KEY,
    lease_owner      TEXT,
    lease_expires_at REAL,
    dead_reason      TEXT,
    dead_at          REAL
);

CREATE TABLE destinations (
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    webhook_id    TEXT NOT NULL,
    webhook_token TEXT NOT NULL,
    thread_id     TEXT,
    created_at    REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE api_keys (
    key_id     TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    label      TEXT,
    created_at REAL NOT NULL,
    revoked_at REAL
);
