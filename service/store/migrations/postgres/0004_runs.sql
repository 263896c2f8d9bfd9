-- Runs: a long run's conversation with the user, from start to result, across the interaction
-- token's end. Only the latest progress is kept. ``due_at`` is when the run engine has something
-- to do (an edit, the hand-off, abandoning it), and a run is claimed with a lease like a lane.

CREATE TABLE runs (
    id                   BIGSERIAL PRIMARY KEY,
    tenant               TEXT    NOT NULL,
    workflow_id          TEXT    NOT NULL,
    body_hash            TEXT    NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN
                             ('running', 'handed_off', 'finished', 'failed', 'abandoned')),
    title                TEXT,
    url                  TEXT,
    depth                TEXT,
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
    timeout_seconds      INTEGER NOT NULL,
    created_at           DOUBLE PRECISION    NOT NULL,
    updated_at           DOUBLE PRECISION    NOT NULL,
    last_activity_at     DOUBLE PRECISION    NOT NULL,
    handoff_at           DOUBLE PRECISION,
    progress             TEXT,
    progress_version     INTEGER NOT NULL DEFAULT 0,
    shown_version        INTEGER NOT NULL DEFAULT 0,
    progress_route       TEXT,
    progress_message_id  TEXT,
    next_edit_at         DOUBLE PRECISION,
    final_shown          BOOLEAN NOT NULL DEFAULT FALSE,
    abandon_notified     BOOLEAN NOT NULL DEFAULT FALSE,
    channel_dead         TEXT,
    coalesced            INTEGER NOT NULL DEFAULT 0,
    failures             INTEGER NOT NULL DEFAULT 0,
    due_at               DOUBLE PRECISION,
    lease_owner          TEXT,
    lease_expires_at     DOUBLE PRECISION,
    error_stage          TEXT,
    error_message        TEXT,
    UNIQUE (tenant, workflow_id)
);
CREATE INDEX runs_tenant_created ON runs (tenant, created_at DESC, id DESC);
CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at);

-- A failed run's result carries its error (stage, message): it is rendered as an error.
ALTER TABLE results ADD COLUMN error_stage TEXT;
ALTER TABLE results ADD COLUMN error_message TEXT;
